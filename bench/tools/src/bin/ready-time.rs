//! Start-to-ready timer: spawns a command, then asks `GET <path>` on a loopback port every
//! millisecond until it answers 200, and prints how long that took and the child's VmRSS at
//! that moment. Then stops the child (SIGTERM via kill(1), SIGKILL after 5 s).
//!
//! ready-time --port P [--path /healthz] [--interval-ms 1] [--timeout-ms 10000]
//!            [--log FILE] -- COMMAND ARGS…
//! prints: `ready_ms=12.345 rss_kb=6789`

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use wxgate_bench_tools::Args;

fn answers_200(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut status = [0u8; 12]; // "HTTP/1.1 200"
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut status).is_ok()
        && &status[9..] == b"200"
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.get::<u16>("port")?));
    let path: String = args.get_or("path", "/healthz".to_owned())?;
    let interval = Duration::from_millis(args.get_or("interval-ms", 1)?);
    let timeout = Duration::from_millis(args.get_or("timeout-ms", 10_000)?);
    let (program, rest) = args.rest.split_first().ok_or("no command after --")?;
    let (out, err) = match args.get_or("log", String::new())? {
        log if log.is_empty() => (Stdio::null(), Stdio::null()),
        log => {
            let file = File::create(log)?;
            (Stdio::from(file.try_clone()?), Stdio::from(file))
        }
    };
    let mut command = Command::new(program);
    command
        .args(rest)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let start = Instant::now();
    let mut child = command.spawn()?;
    let ready = loop {
        if answers_200(addr, &path) {
            break Ok(start.elapsed());
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("{program} exited before it was ready: {status}"));
        }
        if start.elapsed() > timeout {
            break Err(format!("{program} not ready within {timeout:?}"));
        }
        sleep(interval);
    };
    let rss = rss_kb(child.id()).unwrap_or(0);
    stop(&mut child);
    let ready = ready?;
    println!("ready_ms={:.3} rss_kb={rss}", ready.as_secs_f64() * 1000.0);
    Ok(())
}
