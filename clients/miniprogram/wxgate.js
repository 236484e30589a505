// wxgate client for WeChat Mini Programs: logs in through the gateway, keeps the token
// in wx storage, and wraps wx.request so that every call carries it. No dependencies.
//
//   import { createWxgate } from './wxgate.js'
//   const gate = createWxgate({ baseURL: 'https://api.example.com' })
//   const res = await gate.request({ url: '/api/orders' })

/** Codes the client itself produces (the gateway's codes come from its error bodies). */
export const CLIENT_ERRORS = Object.freeze({
  network: 'network_error', // wx.request failed: no connection, DNS, timeout, TLS
  wxLogin: 'wx_login_failed', // wx.login() failed
  phoneDenied: 'phone_denied', // the user refused the getPhoneNumber prompt
  phoneUnavailable: 'phone_unavailable', // getPhoneNumber gave no code for another reason
  http: 'http_error', // an error status without a gateway error body (from the upstream)
})

/** A failed call. `code` is a contract error code or one of CLIENT_ERRORS. */
export class WxgateError extends Error {
  constructor(code, message, { status = 0, wechatErrcode, response } = {}) {
    super(message || code)
    this.name = 'WxgateError'
    this.code = code
    this.status = status
    if (wechatErrcode !== undefined) this.wechatErrcode = wechatErrcode
    if (response !== undefined) this.response = response
  }
}

export function createWxgate(options = {}) {
  const baseURL = (options.baseURL || '').replace(/\/+$/, '')
  const authPrefix = options.authPrefix || '/wx'
  const storageKey = options.storageKey || 'wxgate_token'
  const appid = options.appid // only needed when the gateway serves several mini-programs
  const timeout = options.timeout // passed to wx.request; WeChat's default otherwise
  const api = () => options.wx || globalThis.wx // resolved per call, so tests can swap it

  let loginInFlight = null

  function getToken() {
    return api().getStorageSync(storageKey) || ''
  }

  function setToken(token) {
    if (token) api().setStorageSync(storageKey, token)
    else api().removeStorageSync(storageKey)
  }

  // wx.request as a promise that resolves for any HTTP status, rejects on network errors.
  function send({ url, method = 'GET', data, header = {}, token }) {
    const headers = { ...header }
    if (token) headers.Authorization = `Bearer ${token}`
    if (data !== undefined && !hasHeader(headers, 'content-type')) {
      headers['Content-Type'] = 'application/json'
    }
    return new Promise((resolve, reject) => {
      const call = {
        url: /^https?:\/\//.test(url) ? url : baseURL + url,
        method,
        data,
        header: headers,
        success: resolve,
        fail: (err) => reject(new WxgateError(CLIENT_ERRORS.network, err && err.errMsg)),
      }
      if (timeout) call.timeout = timeout
      api().request(call)
    })
  }

  function wxLogin() {
    return new Promise((resolve, reject) => {
      api().login({
        success: (res) => (res && res.code ? resolve(res.code)
          : reject(new WxgateError(CLIENT_ERRORS.wxLogin, 'wx.login returned no code'))),
        fail: (err) => reject(new WxgateError(CLIENT_ERRORS.wxLogin, err && err.errMsg)),
      })
    })
  }

  /** wx.login -> POST /wx/login; the token is stored. Concurrent callers share one login. */
  function login() {
    if (!loginInFlight) {
      loginInFlight = (async () => {
        const code = await wxLogin()
        const body = appid ? { code, appid } : { code }
        const res = check(await send({ url: authPrefix + '/login', method: 'POST', data: body }))
        setToken(res.data.token)
        return res.data
      })().finally(() => { loginInFlight = null })
    }
    return loginInFlight
  }

  /**
   * wx.request with the gateway token. Resolves with wx.request's response for 2xx/3xx;
   * rejects with a WxgateError otherwise. A 401 `unauthenticated` (token expired or
   * revoked) triggers one new login and one replay. `auth: false` sends no token.
   */
  async function request(opts) {
    if (opts.auth === false) return check(await send(opts))
    const token = getToken() || (await login()).token
    const res = await send({ ...opts, token })
    if (res.statusCode === 401 && errorOf(res).code === 'unauthenticated') {
      // Another caller may already have logged in again while we waited.
      const fresh = getToken() !== token ? getToken() : (await login()).token
      return check(await send({ ...opts, token: fresh }))
    }
    return check(res)
  }

  /** From the getPhoneNumber button's event to POST /wx/phone; the session gets the phone. */
  async function bindPhone(event) {
    const detail = (event && event.detail) || {}
    if (!detail.code) {
      // "getPhoneNumber:fail user deny" (wording varies by version); "no permission" etc.
      const denied = /deny|cancel/i.test(detail.errMsg || '')
      throw new WxgateError(denied ? CLIENT_ERRORS.phoneDenied : CLIENT_ERRORS.phoneUnavailable,
        detail.errMsg || 'getPhoneNumber gave no code')
    }
    const res = await request({ url: authPrefix + '/phone', method: 'POST', data: { code: detail.code } })
    return res.data
  }

  /** GET /wx/session: openid, unionid, appid, account_id, phone_number, expires_at. */
  async function session() {
    return (await request({ url: authPrefix + '/session' })).data
  }

  /** POST /wx/logout and forget the token (also when the gateway already forgot it). */
  async function logout() {
    const token = getToken()
    if (!token) return
    const res = await send({ url: authPrefix + '/logout', method: 'POST', token })
    setToken('')
    if (res.statusCode !== 401) check(res)
  }

  return { login, request, bindPhone, session, logout, getToken }
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
  throw new WxgateError(err.code || CLIENT_ERRORS.http, err.message || `HTTP ${res.statusCode}`, {
    status: res.statusCode,
    wechatErrcode: err.wechat_errcode,
    response: res,
  })
}
