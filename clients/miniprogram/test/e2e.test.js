// wxgate.js end to end against the real gateway in demo mode (its WeChat simulator and
// echo upstream), on loopback. `wx` is implemented over node's fetch.
//
// The binary: $WXGATE_BIN, else target/debug/wxgate of this repository (test.sh builds it).
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import readline from 'node:readline'

import { createWxgate, WxgateError } from '../wxgate.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const bin = process.env.WXGATE_BIN || path.resolve(here, '../../../target/debug/wxgate')

// Each describe() block gets its own demo process: the demo keeps the default login
// rate limit (a burst of 10 per client IP, shared by /wx/login and /wx/phone), and one
// block's logins must not use up another's.
let gatewayURL
let adminURL
let demoLines = []

function useDemo() {
  let demo
  before(async () => {
    demo = spawn(bin, ['demo', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    // one reader for all of stdout: the first line has the addresses, the rest the curl lines
    demoLines = []
    const first = await new Promise((resolve, reject) => {
      demo.once('error', reject)
      demo.once('exit', (code) => reject(new Error(`wxgate demo exited with ${code}`)))
      readline.createInterface({ input: demo.stdout }).on('line', (line) => {
        demoLines.push(line)
        if (demoLines.length === 1) resolve(line)
      })
    })
    const m = first.match(/gateway (http:\/\/127\.0\.0\.1:\d+), admin (http:\/\/127\.0\.0\.1:\d+)/)
    assert.ok(m, `unexpected first line from wxgate demo: ${first}`)
    gatewayURL = m[1]
    adminURL = m[2]
  })
  after(() => {
    demo.kill('SIGTERM')
  })
}

const random = () => randomBytes(6).toString('hex')

// The parts of `wx` the client uses, over fetch. `user` picks the demo identity that
// wx.login codes map to ("alice" = account 10001, "bob" = no account until his phone).
function fetchWx(user = 'alice') {
  const storage = new Map()
  const wx = {
    user,
    logins: 0,
    requests: [],
    getStorageSync: (k) => (storage.has(k) ? storage.get(k) : ''),
    setStorageSync: (k, v) => storage.set(k, v),
    removeStorageSync: (k) => storage.delete(k),
    login({ success }) {
      wx.logins += 1
      setTimeout(() => success({ code: `${wx.user}-${random()}`, errMsg: 'login:ok' }), 0)
    },
    request({ url, method = 'GET', data, header = {}, success, fail }) {
      wx.requests.push({ url, method, header })
      const body = data === undefined ? undefined : typeof data === 'string' ? data : JSON.stringify(data)
      fetch(url, { method, headers: header, body })
        .then(async (res) => {
          const text = await res.text()
          let parsed = text
          try { parsed = JSON.parse(text) } catch { /* wx.request leaves non-JSON as text */ }
          success({ statusCode: res.status, data: parsed, header: Object.fromEntries(res.headers) })
        })
        .catch((e) => fail({ errMsg: `request:fail ${e.message}` }))
    },
  }
  return wx
}

function client(wx) {
  return createWxgate({ baseURL: gatewayURL, wx })
}

describe('sessions', () => {
  useDemo()

  test('login, then a protected route sees the verified identity and not the token', async () => {
    const wx = fetchWx('alice')
    const gate = client(wx)
    const me = await gate.login()
    assert.match(me.token, /^wxg_[A-Za-z0-9_-]{43}$/)
    assert.equal(me.account_id, '10001')

    const res = await gate.request({
      url: '/api/orders?page=2', method: 'POST', data: { item: 42 },
      header: { 'X-WX-OPENID': 'forged', 'X-Client': 'test' },
    })
    const echo = res.data
    assert.equal(echo.method, 'POST')
    assert.equal(echo.path, '/api/orders')
    assert.equal(echo.query, 'page=2')
    assert.deepEqual(JSON.parse(echo.body), { item: 42 })
    assert.deepEqual(echo.headers['x-wx-openid'], [me.openid])
    assert.deepEqual(echo.headers['x-wx-account-id'], ['10001'])
    assert.deepEqual(echo.headers['x-client'], ['test'])
    assert.equal(echo.headers.authorization, undefined, 'the gateway token never goes upstream')

    const s = await gate.session()
    assert.equal(s.openid, me.openid)
    assert.ok(!Number.isNaN(Date.parse(s.expires_at)))
  })

  test('a revoked token: one re-login, the request replayed once, transparently', async () => {
    const wx = fetchWx('alice')
    const gate = client(wx)
    await gate.login()
    const old = gate.getToken()
    // Revoke it behind the client's back (another device logged it out).
    const out = await fetch(`${gatewayURL}/wx/logout`, { method: 'POST', headers: { Authorization: `Bearer ${old}` } })
    assert.equal(out.status, 204)

    const res = await gate.request({ url: '/api/after-revoke' })
    assert.equal(res.statusCode, 200)
    assert.notEqual(gate.getToken(), old)
    assert.equal(wx.logins, 2)
    const calls = wx.requests.filter((r) => r.url.endsWith('/api/after-revoke'))
    assert.deepEqual(calls.map((r) => r.header.Authorization), [`Bearer ${old}`, `Bearer ${gate.getToken()}`])
  })

  test('concurrent first requests share one login', async () => {
    const wx = fetchWx('alice')
    const gate = client(wx)
    const all = await Promise.all([1, 2, 3, 4].map((i) => gate.request({ url: `/api/parallel/${i}` })))
    assert.equal(wx.logins, 1)
    assert.equal(new Set(all.map((r) => r.data.headers['x-wx-openid'][0])).size, 1)
  })

  test('the token never leaves for another origin (here: the admin port)', async () => {
    const wx = fetchWx('alice')
    const gate = client(wx)
    await gate.login()
    const res = await gate.request({ url: `${adminURL}/healthz` })
    assert.equal(res.statusCode, 200)
    const [call] = wx.requests.filter((r) => r.url.endsWith('/healthz'))
    assert.equal(call.url, `${adminURL}/healthz`)
    assert.equal(call.header.Authorization, undefined, 'the token went to another port')
    // The gateway's own origin still gets it, spelled absolute or relative.
    const own = await gate.request({ url: `${gatewayURL}/api/own` })
    assert.deepEqual(own.data.headers['x-wx-account-id'], ['10001'])
  })

  test('an offline logout forgets the token too', async () => {
    const wx = fetchWx('alice')
    const gate = client(wx)
    await gate.login()
    const token = gate.getToken()
    const online = wx.request
    wx.request = (call) => setTimeout(() => call.fail({ errMsg: 'request:fail offline' }), 0)
    await assert.rejects(gate.logout(), { code: 'network_error' })
    wx.request = online
    assert.equal(gate.getToken(), '')
    // The gateway never heard of it, so the session itself is still alive there.
    const still = await fetch(`${gatewayURL}/wx/session`, { headers: { Authorization: `Bearer ${token}` } })
    assert.equal(still.status, 200)
  })

  test('public routes without a token, and logout', async () => {
    const wx = fetchWx('alice')
    const gate = client(wx)
    const pub = await gate.request({ url: '/public/info', auth: false })
    assert.equal(pub.data.path, '/public/info')
    assert.equal(wx.logins, 0)

    await gate.login()
    const token = gate.getToken()
    await gate.logout()
    assert.equal(gate.getToken(), '')
    const after = await fetch(`${gatewayURL}/wx/session`, { headers: { Authorization: `Bearer ${token}` } })
    assert.equal(after.status, 401)
  })
})

describe('phone and errors', () => {
  useDemo()

  test('bindPhone binds the verified phone and its account', async () => {
    const wx = fetchWx('bob')
    const gate = client(wx)
    const me = await gate.login()
    assert.equal(me.account_id, null)
    const phone = await gate.bindPhone({
      detail: { code: `phone-13800138000-bob-${random()}`, errMsg: 'getPhoneNumber:ok' },
    })
    assert.equal(phone.phone_number, '+8613800138000')
    assert.equal(phone.account_id, '10002')
    const res = await gate.request({ url: '/api/me' })
    assert.deepEqual(res.data.headers['x-wx-phone'], ['+8613800138000'])
    assert.deepEqual(res.data.headers['x-wx-account-id'], ['10002'])
    // Refusing the prompt never reaches the gateway.
    const before = wx.requests.length
    await assert.rejects(gate.bindPhone({ detail: { errMsg: 'getPhoneNumber:fail user deny' } }), { code: 'phone_denied' })
    assert.equal(wx.requests.length, before)
  })

  test("the gateway's errors arrive as typed errors", async () => {
    const alice = client(fetchWx('alice'))
    await alice.login()
    // Alice is account 10001; the phone maps to 10002.
    await assert.rejects(
      alice.bindPhone({ detail: { code: `phone-13800138000-alice-${random()}` } }),
      (e) => e instanceof WxgateError && e.code === 'account_conflict' && e.status === 409)
    await assert.rejects(alice.request({ url: '/nowhere' }), { code: 'not_found', status: 404 })

    const bad = client(fetchWx('bad'))
    await assert.rejects(bad.login(),
      (e) => e.code === 'invalid_code' && e.status === 400 && e.wechatErrcode === 40029)
  })
})

describe('WeChat services', () => {
  useDemo()

  test("decrypt opens the data the demo sealed for carol, and her key checks valid", async () => {
    const gate = client(fetchWx('carol'))
    for (let i = 0; i < 100 && !demoLines.some((l) => l.includes('/wx/decrypt')); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const line = demoLines.find((l) => l.includes('/wx/decrypt'))
    assert.ok(line, `no decrypt line among ${demoLines.length} demo lines`)
    const sealed = JSON.parse(line.match(/-d '([^']+)'/)[1])
    const data = await gate.decrypt(sealed)
    assert.equal(data.stepInfoList[0].step, 8042)
    assert.equal((await gate.session()).session_key_valid, undefined)
    assert.equal((await gate.session({ verify: true })).session_key_valid, true)
    // data sealed for carol does not open in alice's session
    const alice = client(fetchWx('alice'))
    await assert.rejects(alice.decrypt(sealed), (e) => e instanceof WxgateError && e.code === 'decrypt_failed')
  })
})
