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
    // uploadFile answers like request, its data a string; downloadFile has no data
    uploadFile(call) {
      wx.calls.push({ ...call, kind: 'upload' })
      const res = route(call, wx)
      const data = res && typeof res.data !== 'string' ? JSON.stringify(res.data) : res && res.data
      setTimeout(() => (res ? call.success({ header: {}, ...res, data }) : call.fail({ errMsg: 'uploadFile:fail' })), 1)
    },
    downloadFile(call) {
      wx.calls.push({ ...call, kind: 'download' })
      const res = route(call, wx)
      setTimeout(() => (res
        ? call.success({ header: res.header || {}, statusCode: res.statusCode, tempFilePath: 'wxfile://tmp/1' })
        : call.fail({ errMsg: 'downloadFile:fail' })), 1)
    },
    connectSocket(call) {
      wx.sockets = [...(wx.sockets || []), call]
      return { socketTask: true, url: call.url }
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

// --- the token stays with the gateway ----------------------------------------------------

// Where each request went and whether it carried the token (stored as 'tok').
async function sent(gate, url) {
  wx.calls.length = 0
  await gate.request({ url })
  assert.equal(wx.calls.length, 1, url)
  return { url: wx.calls[0].url, token: bearer(wx.calls[0]) }
}

test("the token goes to the baseURL's origin, relative URLs resolving against it", async () => {
  const gate = client(() => ({ statusCode: 200, data: 'ok' }))
  wx.storage.set('wxgate_token', 'tok')
  const cases = [
    ['/api/x', 'https://gw.example/api/x'],
    ['api/x', 'https://gw.example/api/x'],
    ['@evil.com/x', 'https://gw.example/@evil.com/x'],
    ['.evil.com/x', 'https://gw.example/.evil.com/x'],
    [':8443/x', 'https://gw.example/:8443/x'],
    ['https://gw.example/x', 'https://gw.example/x'],
    ['HTTPS://GW.EXAMPLE/x', 'HTTPS://GW.EXAMPLE/x'],
    ['https://gw.example:443/x', 'https://gw.example:443/x'],
    ['https://gw.example', 'https://gw.example'],
    ['https://gw.example?q=1', 'https://gw.example?q=1'],
    ['//gw.example/x', 'https://gw.example/x'],
  ]
  for (const [url, expected] of cases) {
    assert.deepEqual(await sent(gate, url), { url: expected, token: 'Bearer tok' }, url)
  }
  assert.equal(wx.logins, 0)
})

test('no token for another origin, a look-alike, or a URL read two ways', async () => {
  const gate = client(() => ({ statusCode: 200, data: 'ok' }))
  wx.storage.set('wxgate_token', 'tok')
  const foreign = [
    'https://third-party.example/x',
    'https://gw.example.evil.com/x',
    'https://gw.example@evil.com/x',
    'https://gw.example:443@evil.com/x',
    'https://user:pw@gw.example/x', // userinfo: refused even before the right host
    'https://gw.example%2f@evil.com/x',
    'https://gw.example\\@evil.com/x', // WHATWG: gw.example; RFC 3986 readers: evil.com
    'https://gw.example\t.evil.com/x',
    'https://evil.com#@gw.example/x',
    'https://evil.com?@gw.example/x',
    'https://gw.example:8443/x',
    'https://gw.example:99999/x',
    'http://gw.example/x',
    'ws://gw.example/x',
    'https:gw.example/x',
    'https:/gw.example/x',
    'https:\\\\gw.example/x',
    'https://gw.example./x',
    'https://gw.еxample/x', // Cyrillic е
    '//evil.com/x',
    '/\\evil.com/x',
    '\\\\evil.com/x',
    '\\/evil.com/x',
  ]
  for (const url of foreign) {
    const { token } = await sent(gate, url)
    assert.equal(token, undefined, `${JSON.stringify(url)} got the token`)
  }
  // Protocol-relative URLs take the baseURL's scheme, as a browser resolves them.
  assert.deepEqual(await sent(gate, '//evil.com/x'), { url: 'https://evil.com/x', token: undefined })
  assert.equal(wx.logins, 0)
})

test("another origin's 401 never logs in, re-logs in or retries with a token", async () => {
  const gate = client((call) => (call.url.startsWith('https://third-party.example/')
    ? err(401, 'unauthenticated') : gateway()(call)))
  // No token yet: a foreign request does not log in to get one.
  await assert.rejects(gate.request({ url: 'https://third-party.example/x' }), { code: 'unauthenticated', status: 401 })
  assert.equal(wx.logins, 0)
  // With a token: its 401 is not the gateway's, so no re-login and no replay.
  await gate.login()
  wx.calls.length = 0
  await assert.rejects(gate.request({ url: 'https://third-party.example/y' }), { code: 'unauthenticated' })
  assert.equal(wx.logins, 1)
  assert.equal(wx.calls.length, 1)
  assert.equal(bearer(wx.calls[0]), undefined)
})

test('createWxgate refuses a baseURL that is not an http(s) origin', () => {
  for (const baseURL of [undefined, '', 'gw.example', 'ftp://gw.example', 'https://user@gw.example',
    'https://gw.example?x=1', '//gw.example']) {
    assert.throws(() => createWxgate({ baseURL, wx: fakeWx(() => null) }), TypeError, String(baseURL))
  }
  createWxgate({ baseURL: 'https://gw.example:8443/gateway/', wx: fakeWx(() => null) })
})

test('a baseURL with a path keeps it; the token still goes to its origin only', async () => {
  const gate = client(() => ({ statusCode: 200, data: 'ok' }), { baseURL: 'https://GW.example:8443/gw/' })
  wx.storage.set('wxgate_token', 'tok')
  assert.deepEqual(await sent(gate, '/api/x'), { url: 'https://GW.example:8443/gw/api/x', token: 'Bearer tok' })
  assert.deepEqual(await sent(gate, 'https://gw.example:8443/other'),
    { url: 'https://gw.example:8443/other', token: 'Bearer tok' })
  assert.equal((await sent(gate, 'https://gw.example/gw/api/x')).token, undefined)
})

// --- logout wins -------------------------------------------------------------------------

test('an offline logout still forgets the token, before its network call', async () => {
  let storedDuringCall
  const gate = client((call, w) => {
    storedDuringCall = w.storage.get('wxgate_token')
    return null // no network
  })
  wx.storage.set('wxgate_token', 'tok')
  await assert.rejects(gate.logout(), { code: 'network_error' })
  assert.equal(gate.getToken(), '')
  assert.equal(wx.storage.has('wxgate_token'), false)
  assert.equal(storedDuringCall, undefined, 'the token was still stored while logout was on the wire')
  assert.equal(bearer(wx.calls[0]), 'Bearer tok', 'the gateway is still told which session to end')
})

test('logout wins over a login waiting for wx.login', async () => {
  const gate = client(gateway())
  const pending = gate.login()
  const waiting = gate.request({ url: '/api/x' }) // shares the login in flight
  await gate.logout()
  await assert.rejects(pending, { code: 'logged_out' })
  await assert.rejects(waiting, { code: 'logged_out' })
  assert.equal(gate.getToken(), '')
  assert.equal(wx.storage.has('wxgate_token'), false)
  assert.equal(wx.calls.length, 0, 'the superseded code was never exchanged')
  // A login after the logout is a new one and keeps its token.
  assert.equal((await gate.login()).token, 'tok-2')
  assert.equal(gate.getToken(), 'tok-2')
})

test("logout wins over a login whose answer arrives after it; that session is ended", async () => {
  let gate
  let loggedOut
  const gw = gateway()
  gate = client((call, w) => {
    if (call.url.endsWith('/wx/login') && !loggedOut) loggedOut = gate.logout() // the user taps "log out"
    return gw(call, w)
  })
  const pending = gate.login()
  const waiting = gate.request({ url: '/api/x' })
  await assert.rejects(pending, { code: 'logged_out' })
  await assert.rejects(waiting, { code: 'logged_out' })
  await loggedOut
  assert.equal(gate.getToken(), '')
  assert.equal(wx.storage.has('wxgate_token'), false)
  assert.equal(wx.calls.filter((c) => c.url.endsWith('/api/x')).length, 0)
  // The token issued after the logout is revoked rather than left alive.
  await new Promise((resolve) => setTimeout(resolve, 10))
  const revoke = wx.calls.filter((c) => c.url.endsWith('/wx/logout'))
  assert.deepEqual(revoke.map(bearer), ['Bearer tok-1'])
  // And the next login is unaffected.
  assert.equal((await gate.login()).token, 'tok-2')
  assert.equal(gate.getToken(), 'tok-2')
})

test('a request whose token was logged out meanwhile does not log in again', async () => {
  let gate
  gate = client((call, w) => {
    if (call.url.endsWith('/api/x')) {
      gate.logout() // logs the token out while the request is on the wire
      return err(401, 'unauthenticated')
    }
    return gateway({ valid: () => false })(call, w)
  })
  wx.storage.set('wxgate_token', 'tok')
  await assert.rejects(gate.request({ url: '/api/x' }), { code: 'unauthenticated', status: 401 })
  assert.equal(wx.logins, 0)
  assert.equal(wx.calls.filter((c) => c.url.endsWith('/api/x')).length, 1)
  assert.equal(gate.getToken(), '')
})

test('session({ verify: true }) asks for the key check; session() does not', async () => {
  const gate = client(gateway())
  assert.equal((await gate.session()).path, '/wx/session')
  assert.equal((await gate.session({ verify: true })).path, '/wx/session?verify=true')
})

test('decrypt posts encryptedData and iv, from data or an event, and returns the JSON', async () => {
  const seen = []
  const gate = client((call, w) => {
    if (call.url.endsWith('/wx/decrypt')) {
      seen.push(call.data)
      if (call.data.iv === 'old') return err(400, 'decrypt_failed')
      return { statusCode: 200, data: { data: { stepInfoList: [{ step: 42 }] } } }
    }
    return gateway()(call, w)
  })
  const opened = await gate.decrypt({ encryptedData: 'ZGF0YQ==', iv: 'aXY=', errMsg: 'getWeRunData:ok' })
  assert.deepEqual(opened, { stepInfoList: [{ step: 42 }] })
  await gate.decrypt({ detail: { encryptedData: 'ZGF0YQ==', iv: 'aXY=' } })
  assert.deepEqual(seen, [{ encryptedData: 'ZGF0YQ==', iv: 'aXY=' }, { encryptedData: 'ZGF0YQ==', iv: 'aXY=' }])
  await assert.rejects(gate.decrypt({ encryptedData: 'ZGF0YQ==', iv: 'old' }), (e) => {
    assert.ok(e instanceof WxgateError)
    assert.equal(e.code, 'decrypt_failed')
    assert.equal(e.status, 400)
    return true
  })
})

test('bindPhone sends the legacy encryptedData event, and the code when there is one', async () => {
  const gate = client(gateway())
  await gate.bindPhone({ detail: { encryptedData: 'ZW5j', iv: 'aXY=', errMsg: 'getPhoneNumber:ok' } })
  const phoneCalls = () => wx.calls.filter((c) => c.url.endsWith('/wx/phone')).map((c) => c.data)
  assert.deepEqual(phoneCalls(), [{ encryptedData: 'ZW5j', iv: 'aXY=' }])
  await gate.bindPhone({ detail: { code: 'pc-1', encryptedData: 'ZW5j', iv: 'aXY=' } })
  assert.deepEqual(phoneCalls()[1], { code: 'pc-1' })
  // a refusal still carries neither: no call
  await assert.rejects(gate.bindPhone({ detail: { errMsg: 'getPhoneNumber:fail user deny' } }))
  assert.equal(phoneCalls().length, 2)
})

test("every other wx.request option passes through; the client's own do not", async () => {
  const gate = client(gateway())
  await gate.request({ url: '/api/a', timeout: 1234, responseType: 'arraybuffer', dataType: 'other', enableHttp2: true, enableCache: true, auth: true })
  const call = wx.calls.at(-1)
  assert.equal(call.timeout, 1234)
  assert.equal(call.responseType, 'arraybuffer')
  assert.equal(call.dataType, 'other')
  assert.equal(call.enableHttp2, true)
  assert.equal(call.enableCache, true)
  assert.equal(call.auth, undefined)
  assert.equal(call.token, undefined)
})

test('uploadFile and downloadFile carry the token, and log in again once on the gateway 401', async () => {
  let dead = 'tok-1'
  const gate = client((call, w) => {
    const path = call.url.replace('https://gw.example', '')
    if (call.url.startsWith('https://cdn.example/')) return { statusCode: 200, data: 'png' }
    if (path === '/api/file' && bearer(call) === `Bearer ${dead}`) {
      return { statusCode: 401, header: { 'WWW-Authenticate': 'Bearer' }, data: { error: { code: 'unauthenticated', message: 'x' } } }
    }
    return gateway()(call, w)
  })
  await gate.login()
  const up = await gate.uploadFile({ url: '/api/file', filePath: 'wxfile://a.png', name: 'file', formData: { a: '1' } })
  assert.equal(up.statusCode, 200)
  const uploads = wx.calls.filter((c) => c.kind === 'upload')
  assert.deepEqual(uploads.map(bearer), ['Bearer tok-1', 'Bearer tok-2'])
  assert.equal(uploads[1].filePath, 'wxfile://a.png')
  assert.deepEqual(uploads[1].formData, { a: '1' })
  dead = 'tok-2'
  const down = await gate.downloadFile({ url: '/api/file' })
  assert.equal(down.tempFilePath, 'wxfile://tmp/1')
  assert.deepEqual(wx.calls.filter((c) => c.kind === 'download').map(bearer), ['Bearer tok-2', 'Bearer tok-3'])
  // another origin: no token, no login
  const before = wx.logins
  await gate.downloadFile({ url: 'https://cdn.example/x.png' })
  assert.equal(bearer(wx.calls.at(-1)), undefined)
  assert.equal(wx.logins, before)
})

test('connectSocket makes sure of a live token first, and sends it only to the gateway', async () => {
  let alive = () => false
  const gate = client(gateway({ valid: (t) => alive(t) }))
  wx.storage.set('wxgate_token', 'tok-dead')
  alive = (t) => t !== 'tok-dead'
  const task = await gate.connectSocket({ url: '/ws/chat', protocols: ['chat'] })
  assert.equal(task.url, 'wss://gw.example/ws/chat')
  const socket = wx.sockets.at(-1)
  assert.equal(socket.header.Authorization, 'Bearer tok-1', 'the dead token was used')
  assert.deepEqual(socket.protocols, ['chat'])
  assert.ok(wx.calls.some((c) => c.url.endsWith('/wx/session')))
  await gate.connectSocket({ url: 'wss://other.example/ws' })
  assert.equal(wx.sockets.at(-1).header.Authorization, undefined)
})

test('retry is opt-in: store_unavailable and wechat_unavailable are retried with backoff', async () => {
  let failures = 2
  const flaky = (call, w) => {
    if (call.url.endsWith('/api/flaky') && failures > 0) {
      failures -= 1
      return err(503, 'store_unavailable')
    }
    return gateway()(call, w)
  }
  const plain = client(flaky)
  await assert.rejects(plain.request({ url: '/api/flaky' }), (e) => e.code === 'store_unavailable')
  failures = 2
  const patient = client(flaky, { retry: { attempts: 2, baseDelay: 1 } })
  assert.equal((await patient.request({ url: '/api/flaky' })).statusCode, 200)
  assert.equal(wx.calls.filter((c) => c.url.endsWith('/api/flaky')).length, 3)
  // a login is retried with a new wx.login code (a code works once)
  let loginFailures = 1
  const gate = client((call, w) => {
    if (call.url.endsWith('/wx/login') && loginFailures > 0) {
      loginFailures -= 1
      return err(503, 'wechat_unavailable')
    }
    return gateway()(call, w)
  }, { retry: { attempts: 1, baseDelay: 1 } })
  await gate.login()
  const codes = wx.calls.filter((c) => c.url.endsWith('/wx/login')).map((c) => c.data.code)
  assert.deepEqual(codes, ['code-1', 'code-2'])
  // other errors are never retried
  const strict = client(() => err(400, 'invalid_code'), { retry: { attempts: 3, baseDelay: 1 } })
  await assert.rejects(strict.login(), (e) => e.code === 'invalid_code')
  assert.equal(wx.calls.length, 1)
})

test('rate_limited carries Retry-After; a full storage is a typed error', async () => {
  const limited = client(() => ({ ...err(429, 'rate_limited'), header: { 'Retry-After': '7' } }))
  await assert.rejects(limited.login(), (e) => e.code === 'rate_limited' && e.retryAfter === 7)
  const full = client(gateway())
  wx.setStorageSync = () => { throw new Error('setStorageSync:fail exceed storage max size 10MB') }
  await assert.rejects(full.login(), (e) => e instanceof WxgateError && e.code === 'storage_error' && /exceed/.test(e.message))
})

test('a token about to expire is renewed before use, without a 401 round trip', async () => {
  const gate = client((call, w) => {
    const res = gateway()(call, w)
    if (call.url.endsWith('/wx/login')) res.data.expires_in = 10 // within the renewal margin
    return res
  })
  await gate.login()
  await gate.request({ url: '/api/a' })
  assert.equal(wx.logins, 2, 'the nearly expired token was sent')
  assert.ok(!wx.calls.some((c) => c.statusCode === 401))
  assert.equal(bearer(wx.calls.at(-1)), 'Bearer tok-2')
})

test('interceptors see every call and answer; the `wx` option takes Taro or uni alike', async () => {
  const seen = []
  const uni = fakeWx(gateway()) // uni-app and Taro expose the same callback API as wx
  const gate = createWxgate({
    baseURL: 'https://gw.example',
    wx: uni,
    onRequest: (call, kind) => {
      seen.push(kind)
      return { ...call, header: { ...call.header, 'X-Trace': 't-1' } }
    },
    onResponse: (res) => ({ ...res, intercepted: true }),
  })
  const res = await gate.request({ url: '/api/a' })
  assert.equal(res.intercepted, true)
  assert.equal(uni.calls.at(-1).header['X-Trace'], 't-1')
  assert.equal(uni.calls.at(-1).header.Authorization, 'Bearer tok-1')
  await gate.connectSocket({ url: '/ws' })
  assert.deepEqual(seen, ['request', 'request', 'request', 'connectSocket'])
  assert.equal(uni.sockets.at(-1).header['X-Trace'], 't-1')
})
