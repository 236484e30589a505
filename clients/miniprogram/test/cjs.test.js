// The CommonJS build in miniprogram_dist/, loaded the way WeChat's npm build resolves a
// package: the `miniprogram` directory of package.json, its index.js, through require().
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import * as esm from '../wxgate.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'))
const require = createRequire(import.meta.url)

test('package.json points the npm build at a CommonJS directory, and ESM users at the module', () => {
  assert.equal(pkg.miniprogram, 'miniprogram_dist')
  assert.equal(pkg.main, 'miniprogram_dist/index.js')
  assert.equal(pkg.module, 'wxgate.js')
  assert.equal(pkg.private, undefined)
  assert.ok(pkg.license, 'a license field')
  for (const f of ['wxgate.js', 'wxgate.d.ts', 'miniprogram_dist/']) assert.ok(pkg.files.includes(f), f)
})

test('the CommonJS build exports what the module does, and works', async () => {
  const cjs = require(path.join(root, pkg.miniprogram, 'index.js'))
  assert.deepEqual(Object.keys(cjs).sort(), Object.keys(esm).sort())
  assert.deepEqual(cjs.CLIENT_ERRORS, esm.CLIENT_ERRORS)
  const storage = new Map()
  const wx = {
    getStorageSync: (k) => storage.get(k) || '',
    setStorageSync: (k, v) => storage.set(k, v),
    removeStorageSync: (k) => storage.delete(k),
    login: ({ success }) => success({ code: 'c1' }),
    request: (call) => call.success({ statusCode: 200, header: {}, data: { token: 'wxg_t', expires_in: 3600 } }),
  }
  const gate = cjs.createWxgate({ baseURL: 'https://gw.example', wx })
  assert.equal((await gate.login()).token, 'wxg_t')
  assert.equal(gate.getToken(), 'wxg_t')
  assert.ok(new cjs.WxgateError('x') instanceof Error)
})
