// Generated from ../wxgate.js by scripts/build-cjs.mjs: do not edit.
'use strict'
// wxgate client for WeChat Mini Programs: logs in through the gateway, keeps the token
// in wx storage, and wraps wx.request, wx.uploadFile, wx.downloadFile and wx.connectSocket
// so that every call to the gateway carries it (and no call to any other origin does).
// No dependencies.
//
//   import { createWxgate } from './wxgate.js'
//   const gate = createWxgate({ baseURL: 'https://api.example.com' })
//   const res = await gate.request({ url: '/api/orders' })

/** Codes the client itself produces (the gateway's codes come from its error bodies). */
const CLIENT_ERRORS = Object.freeze({
  network: 'network_error', // wx.request failed: no connection, DNS, timeout, TLS
  wxLogin: 'wx_login_failed', // wx.login() failed
  phoneDenied: 'phone_denied', // the user refused the getPhoneNumber prompt
  phoneUnavailable: 'phone_unavailable', // getPhoneNumber gave no code for another reason
  http: 'http_error', // an error status without a gateway error body (from the upstream)
  loggedOut: 'logged_out', // logout() overtook this login (or the request waiting for it)
  storage: 'storage_error', // wx.setStorageSync threw (storage full or unavailable)
})

/** Gateway codes that mean "try again shortly"; retried only with the `retry` option. */
const RETRYABLE = new Set(['store_unavailable', 'wechat_unavailable'])

/** How long before its end a token is renewed instead of sent. */
const RENEW_BEFORE_MS = 30 * 1000

/** A failed call. `code` is a contract error code or one of CLIENT_ERRORS. */
class WxgateError extends Error {
  constructor(code, message, { status = 0, wechatErrcode, response, retryAfter } = {}) {
    super(message || code)
    this.name = 'WxgateError'
    this.code = code
    this.status = status
    if (wechatErrcode !== undefined) this.wechatErrcode = wechatErrcode
    if (response !== undefined) this.response = response
    if (retryAfter !== undefined) this.retryAfter = retryAfter
  }
}

function createWxgate(options = {}) {
  const baseURL = String(options.baseURL || '').replace(/\/+$/, '')
  const base = parseOrigin(baseURL)
  if (!base || /[?#]/.test(baseURL)) {
    throw new TypeError(`wxgate: baseURL must be an http(s) URL such as https://api.example.com (got ${JSON.stringify(options.baseURL)})`)
  }
  const authPrefix = options.authPrefix || '/wx'
  const storageKey = options.storageKey || 'wxgate_token'
  const appid = options.appid // only needed when the gateway serves several mini-programs
  const timeout = options.timeout // passed to wx.request; WeChat's default otherwise
  const api = () => options.wx || globalThis.wx // resolved per call, so tests can swap it
  // opt-in: retry store_unavailable / wechat_unavailable with jittered exponential backoff
  const retry = { attempts: 0, baseDelay: 200, ...(options.retry || {}) }
  const expiryKey = storageKey + '_expires_at'
  // Interceptor hooks: every call just before it goes to wx (request, upload, download,
  // socket), and every answer; for logging, tracing headers, or Taro/uni-app's own ways.
  const onRequest = options.onRequest || ((call) => call)
  const onResponse = options.onResponse || ((res) => res)

  let loginInFlight = null
  // Bumped by logout(): a login or a re-login started before it must not store a token.
  let epoch = 0

  function getToken() {
    return api().getStorageSync(storageKey) || ''
  }

  /** The stored token unless it ends within RENEW_BEFORE_MS (then: renew it first). */
  function liveToken() {
    const token = getToken()
    const expiresAt = Number(api().getStorageSync(expiryKey) || 0)
    return token && (!expiresAt || Date.now() < expiresAt - RENEW_BEFORE_MS) ? token : ''
  }

  function setToken(token, expiresIn) {
    try {
      if (token) {
        api().setStorageSync(storageKey, token)
        if (expiresIn > 0) api().setStorageSync(expiryKey, Date.now() + expiresIn * 1000)
      } else {
        api().removeStorageSync(storageKey)
        api().removeStorageSync(expiryKey)
      }
    } catch (e) {
      throw new WxgateError(CLIENT_ERRORS.storage, `wx storage failed: ${(e && (e.errMsg || e.message)) || e}`)
    }
  }

  // The absolute URL wx.request gets: an absolute URL as given; "//host/x" with the
  // baseURL's scheme (another host, as a browser reads it); anything else under baseURL.
  function resolveURL(url) {
    const text = String(url)
    if (/^[a-z][a-z0-9+.-]*:/i.test(text)) return text
    if (/^[\\/]{2}/.test(text)) return `${base.scheme}:${text}`
    return baseURL + (text.startsWith('/') ? '' : '/') + text
  }

  /** Whether `url` (absolute) certainly goes to the gateway's origin. */
  function isGateway(url) {
    const origin = parseOrigin(url)
    return origin !== null && origin.key === base.key
  }

  // The header for `url`: the caller's, plus the token only on the baseURL's origin.
  function headerFor(url, header, token) {
    const headers = { ...(header || {}) }
    if (token && isGateway(url)) headers.Authorization = `Bearer ${token}`
    return headers
  }

  // wx.request as a promise that resolves for any HTTP status, rejects on network errors.
  // Every other wx.request option (timeout, responseType, dataType, enableHttp2, ...)
  // passes through unchanged.
  function send({ url, method = 'GET', data, header, token, auth, success, fail, complete, ...rest }) {
    const target = resolveURL(url)
    const headers = headerFor(target, header, token)
    if (data !== undefined && !hasHeader(headers, 'content-type')) {
      headers['Content-Type'] = 'application/json'
    }
    return new Promise((resolve, reject) => {
      const call = { ...rest, url: target, method, data, header: headers }
      if (timeout && call.timeout === undefined) call.timeout = timeout
      dispatch('request', call, resolve, reject)
    })
  }

  // wx.uploadFile / wx.downloadFile as promises, the same way (their own options pass).
  function transfer(kind) {
    return ({ url, header, token, auth, success, fail, complete, ...rest }) => {
      const target = resolveURL(url)
      return new Promise((resolve, reject) => {
        const call = { ...rest, url: target, header: headerFor(target, header, token) }
        if (timeout && call.timeout === undefined) call.timeout = timeout
        dispatch(kind, call, resolve, reject)
      })
    }
  }
  // Hand `call` to wx[kind] through the hooks.
  function dispatch(kind, call, resolve, reject) {
    const final = onRequest(call, kind) || call
    api()[kind]({
      ...final,
      success: (res) => resolve(onResponse(res, final, kind) || res),
      fail: networkError(reject),
    })
  }
  const sendUpload = transfer('uploadFile')
  const sendDownload = transfer('downloadFile')

  function wxLogin() {
    return new Promise((resolve, reject) => {
      api().login({
        success: (res) => (res && res.code ? resolve(res.code)
          : reject(new WxgateError(CLIENT_ERRORS.wxLogin, 'wx.login returned no code'))),
        fail: (err) => reject(new WxgateError(CLIENT_ERRORS.wxLogin, err && err.errMsg)),
      })
    })
  }

  /**
   * wx.login -> POST /wx/login; the token is stored. Concurrent callers share one login.
   * A logout() while it runs wins: no token is stored (one that arrives is revoked) and
   * the login rejects with `logged_out`.
   */
  function login() {
    if (!loginInFlight) {
      const started = epoch
      const superseded = () => epoch !== started
      const pending = withRetry(async () => {
        // a new wx.login code on every attempt: a code works once
        const code = await wxLogin()
        if (superseded()) throw loggedOut()
        const body = appid ? { code, appid } : { code }
        const res = check(await send({ url: authPrefix + '/login', method: 'POST', data: body }))
        if (superseded()) {
          revoke(res.data.token)
          throw loggedOut()
        }
        setToken(res.data.token, res.data.expires_in)
        return res.data
      }).finally(() => {
        if (loginInFlight === pending) loginInFlight = null
      })
      loginInFlight = pending
    }
    return loginInFlight
  }

  // Best effort: end a session nobody holds any more (issued after a logout).
  function revoke(token) {
    if (!token) return
    send({ url: authPrefix + '/logout', method: 'POST', token }).catch(() => {})
  }

  /**
   * wx.request with the gateway token. Resolves with wx.request's response for 2xx/3xx;
   * rejects with a WxgateError otherwise. A 401 `unauthenticated` (token expired or
   * revoked) triggers one new login and one replay, unless logout() came in between.
   * `auth: false`, and any URL off the baseURL's origin, send no token and never log in.
   */
  function request(opts) {
    return withRetry(() => authorized(opts, send))
  }

  /** wx.uploadFile with the token, re-login and replay as request(). */
  function uploadFile(opts) {
    return withRetry(() => authorized(opts, sendUpload))
  }

  /** wx.downloadFile with the token, re-login and replay as request(). */
  function downloadFile(opts) {
    return withRetry(() => authorized(opts, sendDownload))
  }

  // One call through `transport` with the token when it goes to the gateway; one
  // re-login and one replay on the gateway's 401.
  async function authorized(opts, transport) {
    if (opts.auth === false || !isGateway(resolveURL(opts.url))) return check(await transport(opts))
    const started = epoch
    const token = liveToken() || (await login()).token
    const res = await transport({ ...opts, token })
    if (isUnauthenticated(res) && epoch === started) {
      // Another caller may already have logged in again while we waited.
      const current = liveToken()
      const fresh = current && current !== token ? current : (await login()).token
      return check(await transport({ ...opts, token: fresh }))
    }
    return check(res)
  }

  /**
   * wx.connectSocket with the token. A failed handshake tells the page nothing (no
   * status), so the token is first made sure of (GET /wx/session, logging in again when
   * it is dead); then the SocketTask of wx.connectSocket is returned. ws:// and wss://
   * URLs count as the baseURL's origin when their host and port are its.
   */
  async function connectSocket({ url, header, auth, ...rest }) {
    const target = resolveSocketURL(url)
    let token = ''
    if (auth !== false && isGateway(target.replace(/^ws/i, 'http'))) {
      await request({ url: authPrefix + '/session' })
      token = getToken()
    }
    const headers = { ...(header || {}) }
    if (token) headers.Authorization = `Bearer ${token}`
    const call = { ...rest, url: target, header: headers }
    return api().connectSocket(onRequest(call, 'connectSocket') || call)
  }

  function resolveSocketURL(url) {
    const text = String(url)
    if (/^wss?:/i.test(text)) return text
    return resolveURL(text).replace(/^http/i, 'ws')
  }

  // Run `attempt`; with the `retry` option, again after a jittered, doubling delay while
  // it fails with store_unavailable or wechat_unavailable.
  async function withRetry(attempt) {
    for (let i = 0; ; i += 1) {
      try {
        return await attempt()
      } catch (e) {
        if (!(e instanceof WxgateError) || !RETRYABLE.has(e.code) || i >= retry.attempts) throw e
        const delay = retry.baseDelay * 2 ** i * (0.5 + Math.random())
        await new Promise((resolve) => setTimeout(resolve, delay))
      }
    }
  }

  /**
   * From the getPhoneNumber button's event to POST /wx/phone; the session gets the phone.
   * The button's `code` is sent when there is one; an older base library's event with only
   * `encryptedData` and `iv` is sent as that (the gateway decrypts it with the session key).
   */
  async function bindPhone(event) {
    const detail = (event && event.detail) || {}
    if (!detail.code && detail.encryptedData && detail.iv) {
      const data = { encryptedData: detail.encryptedData, iv: detail.iv }
      return (await request({ url: authPrefix + '/phone', method: 'POST', data })).data
    }
    if (!detail.code) {
      // "getPhoneNumber:fail user deny" (wording varies by version); "no permission" etc.
      const denied = /deny|cancel/i.test(detail.errMsg || '')
      throw new WxgateError(denied ? CLIENT_ERRORS.phoneDenied : CLIENT_ERRORS.phoneUnavailable,
        detail.errMsg || 'getPhoneNumber gave no code')
    }
    const res = await request({ url: authPrefix + '/phone', method: 'POST', data: { code: detail.code } })
    return res.data
  }

  /**
   * GET /wx/session: openid, unionid, appid, account_id, phone_number, expires_at; with
   * `{ verify: true }` also `session_key_valid` (WeChat's checksession: false means call
   * wx.login again before using encrypted data; null when WeChat could not be asked).
   */
  async function session({ verify = false } = {}) {
    const url = authPrefix + '/session' + (verify ? '?verify=true' : '')
    return (await request({ url })).data
  }

  /**
   * POST /wx/decrypt: the JSON sealed in `encryptedData` + `iv` (what wx.getWeRunData,
   * wx.getShareInfo or a button event hands over; `{ detail: {...} }` events too), opened
   * by the gateway with the session key it holds. `decrypt_failed` means the data was
   * sealed for another session key: log in again, fetch the data again, retry.
   */
  async function decrypt(input) {
    const source = (input && input.detail) || input || {}
    const data = { encryptedData: source.encryptedData, iv: source.iv }
    return (await request({ url: authPrefix + '/decrypt', method: 'POST', data })).data.data
  }

  /**
   * Forget the token, then POST /wx/logout with it. The token is gone first, so an
   * offline logout forgets it too (and rejects with `network_error`); a login in flight
   * never stores its token afterwards.
   */
  async function logout() {
    epoch += 1
    loginInFlight = null
    const token = getToken()
    setToken('')
    if (!token) return
    const res = await send({ url: authPrefix + '/logout', method: 'POST', token })
    if (res.statusCode !== 401) check(res) // 401: the gateway had already forgotten it
  }

  return { login, request, uploadFile, downloadFile, connectSocket, bindPhone, session, decrypt, logout, getToken }
}

const DEFAULT_PORTS = { http: 80, https: 443 }

/**
 * The origin of an absolute http(s) URL as {scheme, key}, or null when this strict
 * reading is not certain of it. Scheme and host compare case-insensitively and a default
 * port equals no port; refused: userinfo (`@`), a backslash before the path (parsers
 * disagree where its host ends), percent-encoding, whitespace, non-ASCII, a port out of
 * range, anything but `scheme://` before the host.
 */
function parseOrigin(url) {
  const m = /^(https?):\/\/([^/?#\\]*)([/?#\\]|$)/i.exec(url)
  if (!m || m[3] === '\\') return null
  const scheme = m[1].toLowerCase()
  const hostPort = /^([a-z0-9_.-]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/.exec(m[2].toLowerCase())
  if (!hostPort) return null
  const port = hostPort[2] === undefined ? DEFAULT_PORTS[scheme] : Number(hostPort[2])
  if (port < 1 || port > 65535) return null
  return { scheme, key: `${scheme}://${hostPort[1]}:${port}` }
}

function networkError(reject) {
  return (err) => reject(new WxgateError(CLIENT_ERRORS.network, err && err.errMsg))
}

// The gateway's own 401: its error body says `unauthenticated` (a download has no body:
// then its `WWW-Authenticate: Bearer`, which only the gateway's 401 is certain to carry).
function isUnauthenticated(res) {
  if (res.statusCode !== 401) return false
  if (errorOf(res).code === 'unauthenticated') return true
  return res.data === undefined && /^bearer/i.test(headerValue(res, 'www-authenticate'))
}

function headerValue(res, name) {
  const header = res.header || {}
  const key = Object.keys(header).find((k) => k.toLowerCase() === name)
  return key === undefined ? '' : String(header[key])
}

function loggedOut() {
  return new WxgateError(CLIENT_ERRORS.loggedOut, 'logout() was called while this login ran')
}

function hasHeader(headers, name) {
  return Object.keys(headers).some((k) => k.toLowerCase() === name)
}

// The gateway's error body: {"error": {"code", "message", "wechat_errcode"?}}.
function errorOf(res) {
  const body = typeof res.data === 'string' ? safeParse(res.data) : res.data
  return (body && typeof body.error === 'object' && body.error) || {}
}

function safeParse(text) {
  try { return JSON.parse(text) } catch { return null }
}

function check(res) {
  if (res.statusCode < 400) return res
  const err = errorOf(res)
  const retryAfter = Number(headerValue(res, 'retry-after'))
  throw new WxgateError(err.code || CLIENT_ERRORS.http, err.message || `HTTP ${res.statusCode}`, {
    status: res.statusCode,
    wechatErrcode: err.wechat_errcode,
    response: res,
    retryAfter: headerValue(res, 'retry-after') && Number.isFinite(retryAfter) ? retryAfter : undefined,
  })
}

module.exports = { CLIENT_ERRORS, WxgateError, createWxgate }
