// Types for wxgate.js, the wxgate client for WeChat Mini Programs.

/** Error codes the gateway answers with (its contract, section 6). */
export type GatewayErrorCode =
  | 'invalid_request'
  | 'invalid_code'
  | 'code_used'
  | 'user_blocked'
  | 'unauthenticated'
  | 'account_not_bound'
  | 'not_found'
  | 'method_not_allowed'
  | 'account_conflict'
  | 'payload_too_large'
  | 'rate_limited'
  | 'internal_error'
  | 'wechat_error'
  | 'upstream_unavailable'
  | 'wechat_unavailable'
  | 'store_unavailable'
  | 'upstream_timeout'
  /** encryptedData that does not open with the session's key: log in again and retry. */
  | 'decrypt_failed'
  | 'request_timeout'
  | 'forbidden'

/** Error codes the client produces itself. */
export type ClientErrorCode =
  | 'network_error'
  | 'wx_login_failed'
  | 'phone_denied'
  | 'phone_unavailable'
  | 'http_error'
  /** logout() was called while this login (or the request waiting for it) ran. */
  | 'logged_out'
  /** wx.setStorageSync threw (storage full or unavailable); the token was not kept. */
  | 'storage_error'

export type WxgateErrorCode = GatewayErrorCode | ClientErrorCode

export declare const CLIENT_ERRORS: Readonly<{
  network: 'network_error'
  wxLogin: 'wx_login_failed'
  phoneDenied: 'phone_denied'
  phoneUnavailable: 'phone_unavailable'
  http: 'http_error'
  loggedOut: 'logged_out'
  storage: 'storage_error'
}>

export declare class WxgateError extends Error {
  readonly name: 'WxgateError'
  /** A contract error code, or a client code for failures that never reached the gateway. */
  readonly code: WxgateErrorCode
  /** HTTP status; 0 when there was no response. */
  readonly status: number
  /** WeChat's errcode, when WeChat caused the error. */
  readonly wechatErrcode?: number
  /** The wx.request response of an error status. */
  readonly response?: WxResponse
  /** Seconds from the `Retry-After` header (on `rate_limited`), when the answer had one. */
  readonly retryAfter?: number
}

/** What wx.request's success callback receives. */
export interface WxResponse<T = any> {
  statusCode: number
  data: T
  header: Record<string, string>
}

export interface RequestOptions {
  /**
   * A path under baseURL ("/api/orders"; "api/orders" too) or an absolute URL. The token
   * goes only to baseURL's origin (scheme, host and port); any other URL, a
   * protocol-relative "//host/x" included, is sent without it and never logs in.
   */
  url: string
  /** The methods wx.request takes. */
  method?: 'OPTIONS' | 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'TRACE' | 'CONNECT'
  /** Sent as JSON unless `header` sets another Content-Type. */
  data?: unknown
  header?: Record<string, string>
  /** false: send no token and never log in (for `public` routes). Default true. */
  auth?: boolean
  /** Milliseconds; overrides createWxgate's `timeout`. */
  timeout?: number
  dataType?: 'json' | string
  responseType?: 'text' | 'arraybuffer'
  enableHttp2?: boolean
  enableQuic?: boolean
  enableCache?: boolean
  enableChunked?: boolean
  /** Any other wx.request option passes through unchanged. */
  [option: string]: unknown
}

/** wx.uploadFile's options; the token, re-login and replay as for request(). */
export interface UploadFileOptions {
  url: string
  filePath: string
  name: string
  header?: Record<string, string>
  formData?: Record<string, unknown>
  timeout?: number
  auth?: boolean
  [option: string]: unknown
}

/** What wx.uploadFile's success callback receives (`data` is the body as text). */
export interface UploadFileResult {
  statusCode: number
  data: string
}

/** wx.downloadFile's options; the token, re-login and replay as for request(). */
export interface DownloadFileOptions {
  url: string
  header?: Record<string, string>
  filePath?: string
  timeout?: number
  auth?: boolean
  [option: string]: unknown
}

export interface DownloadFileResult {
  statusCode: number
  tempFilePath: string
  filePath?: string
}

/** wx.connectSocket's options: `url` may be ws(s)://, http(s):// or a path under baseURL. */
export interface ConnectSocketOptions {
  url: string
  header?: Record<string, string>
  protocols?: string[]
  tcpNoDelay?: boolean
  perMessageDeflate?: boolean
  timeout?: number
  auth?: boolean
  [option: string]: unknown
}

export interface LoginResult {
  token: string
  token_type: 'Bearer'
  expires_in: number
  openid: string
  unionid: string | null
  account_id: string | null
}

export interface PhoneResult {
  /** E.164, e.g. "+8613800138000". */
  phone_number: string
  pure_phone_number: string
  country_code: string
  account_id: string | null
}

export interface SessionInfo {
  openid: string
  unionid: string | null
  appid: string
  account_id: string | null
  phone_number: string | null
  /** RFC 3339, UTC. */
  expires_at: string
  /**
   * Only with `session({ verify: true })`: whether WeChat still holds this session's key
   * (false: call wx.login again before using encrypted data); null when WeChat could not
   * be asked.
   */
  session_key_valid?: boolean | null
}

/** Data sealed with the session key, as wx.getWeRunData / wx.getShareInfo give it. */
export interface EncryptedData {
  encryptedData: string
  iv: string
}

/** The event of `<button open-type="getPhoneNumber" bindgetphonenumber="...">`. */
export interface PhoneNumberEvent {
  /** `code` (base library 2.21.2+); older ones give only `encryptedData` and `iv`. */
  detail: { code?: string; errMsg?: string; encryptedData?: string; iv?: string }
}

export interface WxgateOptions {
  /**
   * The gateway's origin, e.g. "https://api.example.com" (a legal domain of the app), or
   * an http(s) URL with a path prefix. The token is only ever sent to this origin.
   * createWxgate throws a TypeError for anything else (no scheme, userinfo, query).
   */
  baseURL: string
  /** The gateway's [server] auth_prefix. Default "/wx". */
  authPrefix?: string
  /** wx storage key of the token. Default "wxgate_token". */
  storageKey?: string
  /** Sent with the login when the gateway serves several mini-programs. */
  appid?: string
  /** wx.request timeout in milliseconds. */
  timeout?: number
  /** The `wx` object; defaults to the global one (or Taro / uni, which have the same API). */
  wx?: unknown
  /**
   * Opt-in retries of `store_unavailable` and `wechat_unavailable` (a login with a new
   * wx.login code each time): `attempts` more tries (default 0), after `baseDelay` ms
   * (default 200) doubled each time, with jitter.
   */
  retry?: { attempts?: number; baseDelay?: number }
  /**
   * Interceptor: sees every call just before it goes to wx (`kind`: request, uploadFile,
   * downloadFile, connectSocket, with the token already in `header`); return the call to
   * send (or nothing to send it as is).
   */
  onRequest?: (call: Record<string, any>, kind: string) => Record<string, any> | void
  /** Interceptor: sees every answer before the client reads it; return the answer to use. */
  onResponse?: (res: any, call: Record<string, any>, kind: string) => any
}

export interface WxgateClient {
  /**
   * wx.login() then POST /wx/login; stores the token. Concurrent calls share one login.
   * Rejects with `logged_out` (and stores nothing) when logout() is called meanwhile.
   */
  login(): Promise<LoginResult>
  /**
   * wx.request with `Authorization: Bearer` for the gateway's origin; logs in first when
   * there is no token, and once more (replaying the request once) on 401
   * `unauthenticated`, unless logout() came in between. URLs on other origins get no
   * token, no login and no replay. Rejects with a WxgateError on any status >= 400 and on
   * network failure.
   */
  request<T = any>(options: RequestOptions): Promise<WxResponse<T>>
  /** wx.uploadFile with the token; as request() for login, 401 and errors. */
  uploadFile(options: UploadFileOptions): Promise<UploadFileResult>
  /** wx.downloadFile with the token; as request() for login, 401 and errors. */
  downloadFile(options: DownloadFileOptions): Promise<DownloadFileResult>
  /**
   * wx.connectSocket with the token: a failed handshake has no status to act on, so the
   * token is made sure of first (GET /wx/session, logging in again when it is dead).
   * Resolves with wx.connectSocket's SocketTask.
   */
  connectSocket(options: ConnectSocketOptions): Promise<unknown>
  /**
   * getPhoneNumber event -> POST /wx/phone (its `code`, or the legacy `encryptedData` and
   * `iv`). Rejects with `phone_denied` when the user refused.
   */
  bindPhone(event: PhoneNumberEvent): Promise<PhoneResult>
  /** GET /wx/session; `{ verify: true }` adds `session_key_valid`. */
  session(options?: { verify?: boolean }): Promise<SessionInfo>
  /** POST /wx/decrypt: the decrypted JSON. Rejects with `decrypt_failed` for another key's data. */
  decrypt<T = Record<string, unknown>>(input: EncryptedData | { detail: EncryptedData }): Promise<T>
  /**
   * Forget the token (before any network call, so also when offline), then POST
   * /wx/logout with it. A login in flight never stores its token afterwards.
   */
  logout(): Promise<void>
  /** The stored token, or "". */
  getToken(): string
}

export declare function createWxgate(options: WxgateOptions): WxgateClient
