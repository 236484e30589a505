// wxgate.js against a mocked `wx` global: no network, no gateway.
import { test, beforeEach } from 'node:test'
import assert from 'node:assert/strict'

import { createWxgate, WxgateError } from '../wxgate.js'

// A fake `wx`: storage in a Map, wx.login hands out numbered codes, wx.request asks
// `route(call)` for {statusCode, data} (or null to fail like a dropped connection).
function fakeWx(route) {
  const storage = new Map()
  const wx = {
    calls: [],
    logins: 0,
    storage,
    getStorageSync: (k) => (storage.has(k) ? storage.get(k) : ''),
    setStorageSync: (k, v) => storage.set(k, v),
    removeStorageSync: (k) => storage.delete(k),
    login({ success }) {
      wx.logins += 1
      const code = `code-${wx.logins}`
      setTimeout(() => success({ code, errMsg: 'login:ok' }), 5)
    },
    request(call) {
      wx.calls.push(call)
      const res = route(call, wx)
      setTimeout(() => (res ? call.success({ header: {}, ...res }) : call.fail({ errMsg: 'request:fail' })), 1)
    },
  }
  return wx
}

const err = (status, code, extra = {}) => ({ statusCode: status, data: { error: { code, message: code, ...extra } } })
const bearer = (call) => call.header.Authorization

// The gateway: login code-N gives token tok-N; tokens in `valid` are accepted.
function gateway({ valid = () => true } = {}) {
  return (call, wx) => {
    const path = call.url.replace('https://gw.example', '')
    if (path === '/wx/login') {
      const n = call.data.code.split('-')[1]
      return { statusCode: 200, data: { token: `tok-${n}`, token_type: 'Bearer', expires_in: 3600, openid: 'o1', unionid: null, account_id: null } }
    }
    if (!bearer(call) || !valid(bearer(call).slice(7), wx)) return err(401, 'unauthenticated')
    if (path === '/wx/phone') return { statusCode: 200, data: { phone_number: '+8613800138000', pure_phone_number: '13800138000', country_code: '86', account_id: '10002' } }
    if (path === '/wx/logout') return { statusCode: 204, data: '' }
    return { statusCode: 200, data: { path, token: bearer(call) } }
  }
}

let wx
beforeEach(() => { delete globalThis.wx })

function client(route, options = {}) {
  wx = fakeWx(route)
  globalThis.wx = wx
  return createWxgate({ baseURL: 'https://gw.example/', ...options })
}

test('login exchanges the wx.login code and stores the token', async () => {
  const gate = client(gateway(), { storageKey: 'my_token', appid: 'wxapp' })
  const res = await gate.login()
  assert.equal(res.token, 'tok-1')
  assert.equal(wx.storage.get('my_token'), 'tok-1')
  assert.equal(gate.getToken(), 'tok-1')
  const [call] = wx.calls
  assert.equal(call.url, 'https://gw.example/wx/login')
  assert.equal(call.method, 'POST')
  assert.deepEqual(call.data, { code: 'code-1', appid: 'wxapp' })
  assert.equal(call.header.Authorization, undefined)
})

test('concurrent callers share one login in flight', async () => {
  const gate = client(gateway())
  const results = await Promise.all([1, 2, 3, 4, 5].map((i) => gate.request({ url: `/api/${i}` })))
  assert.equal(wx.logins, 1)
  assert.equal(wx.calls.filter((c) => c.url.endsWith('/wx/login')).length, 1)
  for (const r of results) assert.equal(r.data.token, 'Bearer tok-1')
  // A later login is a new one.
  await gate.login()
  assert.equal(wx.logins, 2)
})

test('a 401 unauthenticated logs in again and replays the request once', async () => {
  const gate = client(gateway({ valid: (t) => t !== 'stale' }))
  wx.storage.set('wxgate_token', 'stale')
  const res = await gate.request({ url: '/api/orders', method: 'POST', data: { n: 1 } })
  assert.equal(res.statusCode, 200)
  assert.equal(res.data.token, 'Bearer tok-1')
  assert.equal(wx.logins, 1)
  const api = wx.calls.filter((c) => c.url.endsWith('/api/orders'))
  assert.equal(api.length, 2, 'the original and exactly one replay')
  assert.deepEqual(api.map(bearer), ['Bearer stale', 'Bearer tok-1'])
  assert.deepEqual(api[1].data, { n: 1 })
  assert.equal(api[1].method, 'POST')
})

test('a second 401 is not retried again', async () => {
  const gate = client(gateway({ valid: () => false }))
  wx.storage.set('wxgate_token', 'stale')
  await assert.rejects(gate.request({ url: '/api/x' }), (e) => {
    assert.ok(e instanceof WxgateError)
    assert.equal(e.code, 'unauthenticated')
    assert.equal(e.status, 401)
    return true
  })
  assert.equal(wx.logins, 1)
  assert.equal(wx.calls.filter((c) => c.url.endsWith('/api/x')).length, 2)
})

test('several requests failing with 401 at once share one re-login', async () => {
  const gate = client(gateway({ valid: (t) => t !== 'stale' }))
  wx.storage.set('wxgate_token', 'stale')
  await Promise.all([1, 2, 3].map((i) => gate.request({ url: `/api/${i}` })))
  assert.equal(wx.logins, 1)
})

test("an upstream's own 401 (not the gateway's) is not a reason to log in again", async () => {
  const gate = client((call) => (call.url.endsWith('/wx/login')
    ? gateway()(call) : { statusCode: 401, data: { message: 'legacy says no' } }))
  await assert.rejects(gate.request({ url: '/api/legacy' }), { code: 'http_error', status: 401 })
  assert.equal(wx.logins, 1)
})

test("the gateway's error codes surface as typed errors", async () => {
  const gate = client((call) => (call.url.endsWith('/wx/login')
    ? err(400, 'invalid_code', { wechat_errcode: 40029 }) : err(403, 'account_not_bound')))
  await assert.rejects(gate.login(), (e) => e instanceof WxgateError && e.code === 'invalid_code' &&
    e.status === 400 && e.wechatErrcode === 40029)
  assert.equal(gate.getToken(), '')
  wx.storage.set('wxgate_token', 'tok')
  await assert.rejects(gate.request({ url: '/api/x' }), { code: 'account_not_bound', status: 403 })
})

test('network failures and wx.login failures are typed too', async () => {
  const gate = client(() => null)
  await assert.rejects(gate.login(), { code: 'network_error', status: 0 })
  wx.login = ({ fail }) => fail({ errMsg: 'login:fail' })
  await assert.rejects(gate.login(), { code: 'wx_login_failed' })
})

test('bindPhone posts the button code', async () => {
  const gate = client(gateway())
  const res = await gate.bindPhone({ detail: { code: 'pc-1', errMsg: 'getPhoneNumber:ok' } })
  assert.equal(res.phone_number, '+8613800138000')
  const call = wx.calls.find((c) => c.url.endsWith('/wx/phone'))
  assert.deepEqual(call.data, { code: 'pc-1' })
  assert.equal(bearer(call), 'Bearer tok-1')
})

test('bindPhone reports the user refusing, without calling the gateway', async () => {
  const gate = client(gateway())
  for (const errMsg of ['getPhoneNumber:fail user deny', 'getPhoneNumber:fail:user cancel']) {
    await assert.rejects(gate.bindPhone({ detail: { errMsg } }), { code: 'phone_denied', message: errMsg })
  }
  await assert.rejects(gate.bindPhone({ detail: { errMsg: 'getPhoneNumber:fail no permission' } }),
    { code: 'phone_unavailable' })
  assert.equal(wx.calls.length, 0)
  assert.equal(wx.logins, 0)
})

test('session() and logout()', async () => {
  const gate = client(gateway())
  await gate.login()
  const s = await gate.session()
  assert.equal(s.path, '/wx/session')
  await gate.logout()
  assert.equal(gate.getToken(), '')
  assert.ok(wx.calls.some((c) => c.url.endsWith('/wx/logout') && bearer(c) === 'Bearer tok-1'))
  const before = wx.calls.length
  await gate.logout() // no token: nothing to do
  assert.equal(wx.calls.length, before)
})

test('logout forgets a token the gateway no longer knows', async () => {
  const gate = client(gateway({ valid: () => false }))
  wx.storage.set('wxgate_token', 'stale')
  await gate.logout()
  assert.equal(gate.getToken(), '')
  assert.equal(wx.logins, 0)
})

test('auth: false sends no token and never logs in', async () => {
  const gate = client(() => ({ statusCode: 200, data: 'ok' }))
  wx.storage.set('wxgate_token', 'tok')
  const res = await gate.request({ url: '/public/x', auth: false })
  assert.equal(res.data, 'ok')
  assert.equal(wx.calls[0].header.Authorization, undefined)
  assert.equal(wx.logins, 0)
})
