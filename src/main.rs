//! The `wxgate` command line: parse arguments, load the configuration, hand over.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use wxgate::accounts::{AccountResolver, reload};
use wxgate::config::{Config, LogFormat};
use wxgate::server::Server;
use wxgate::state::AppState;
use wxgate::{demo, logging};

#[derive(Parser)]
#[command(
    name = "wxgate",
    version,
    about = "Authentication gateway for WeChat Mini Programs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the gateway.
    Run {
        /// The configuration file.
        #[arg(long, env = "WXGATE_CONFIG")]
        config: PathBuf,
        /// Log format (overrides `[log] format`).
        #[arg(long, value_enum)]
        log_format: Option<FormatArg>,
    },
    /// Load and validate a configuration, then exit.
    CheckConfig {
        #[arg(long, env = "WXGATE_CONFIG")]
        config: PathBuf,
    },
    /// Run the gateway with a built-in WeChat simulator and echo upstream, in memory.
    Demo {
        /// Public listener of the demo gateway (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Admin listener of the demo gateway.
        #[arg(long, default_value = "127.0.0.1:0")]
        admin_listen: SocketAddr,
        #[arg(long, value_enum)]
        log_format: Option<FormatArg>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Text,
    Json,
}

impl From<FormatArg> for LogFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Text => LogFormat::Text,
            FormatArg::Json => LogFormat::Json,
        }
    }
}

fn main() -> ExitCode {
    ignore_sigxfsz();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wxgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Run { config, log_format } => {
            runtime.block_on(run(config, log_format.map(Into::into)))
        }
        Command::Demo {
            listen,
            admin_listen,
            log_format,
        } => {
            let format = log_format.map_or(LogFormat::Text, Into::into);
            let _guard = logging::init(format, "info");
            runtime.block_on(demo::run(listen, admin_listen))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wxgate: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A write past the file-size limit (`RLIMIT_FSIZE`: `ulimit -f`, a capped volume) raises
/// SIGXFSZ, whose default action kills the process. Ignored, the write fails with `EFBIG`
/// instead, the binding store answers 500 and heals once writes work again.
///
/// `libc::signal` with `SIG_IGN` rather than tokio's signal streams: ignoring is exactly
/// the disposition POSIX ties to "fail with EFBIG", it needs no handler, no runtime and no
/// listener kept alive, and it is set here before any thread exists.
fn ignore_sigxfsz() {
    // SAFETY: SIG_IGN installs no handler code, and no other thread is running yet.
    let previous = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        eprintln!("wxgate: cannot ignore SIGXFSZ; a full file-size limit will stop the process");
    }
}

fn check_config(path: &std::path::Path) -> Result<(), String> {
    let config = Config::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(file) = &config.accounts.file {
        let accounts =
            AccountResolver::load(Some(file.clone())).map_err(|e| format!("accounts.file: {e}"))?;
        drop(accounts);
    }
    println!("{}", config.summary());
    Ok(())
}

async fn run(path: PathBuf, log_format: Option<LogFormat>) -> Result<(), String> {
    let config = Config::load(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let _guard = logging::init(log_format.unwrap_or(config.log.format), &config.log.level);
    let accounts = Arc::new(
        AccountResolver::load(config.accounts.file.clone())
            .map_err(|e| format!("accounts.file: {e}"))?,
    );
    let _watcher = reload::spawn(accounts.clone());
    let state = Arc::new(AppState::new(config, accounts)?);
    state.limiter.spawn_pruner();
    let server = Server::bind(state).await?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = ?server.public_addr(),
        admin = ?server.admin_addr(),
        "wxgate is listening"
    );
    server.serve(wxgate::server::shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}
