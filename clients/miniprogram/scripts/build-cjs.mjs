// Writes miniprogram_dist/index.js: wxgate.js as CommonJS, for WeChat's npm build (which
// resolves a package's `miniprogram` directory and expects CommonJS there), and copies the
// types beside it. `node scripts/build-cjs.mjs --check` fails when the committed copy is
// not what this script would write (the tests run it so).
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..')
const source = readFileSync(path.join(root, 'wxgate.js'), 'utf8')

const exported = []
const body = source.replace(/^export (const|class|function) ([A-Za-z_$][\w$]*)/gm, (_, kind, name) => {
  exported.push(name)
  return `${kind} ${name}`
})
if (/^\s*(export|import)\b/m.test(body)) {
  throw new Error('wxgate.js has an import or export this script does not turn into CommonJS')
}
const cjs = `// Generated from ../wxgate.js by scripts/build-cjs.mjs: do not edit.
'use strict'
${body}
module.exports = { ${exported.join(', ')} }
`
const outputs = {
  'miniprogram_dist/index.js': cjs,
  'miniprogram_dist/index.d.ts': readFileSync(path.join(root, 'wxgate.d.ts'), 'utf8'),
  // the package is "type": "module"; node must read this directory as CommonJS, as
  // WeChat's npm build does
  'miniprogram_dist/package.json': '{ "type": "commonjs" }\n',
}

if (process.argv.includes('--check')) {
  const stale = Object.entries(outputs).filter(([file, text]) => {
    const full = path.join(root, file)
    return !existsSync(full) || readFileSync(full, 'utf8') !== text
  })
  if (stale.length) {
    console.error(`stale: ${stale.map(([f]) => f).join(', ')}; run node scripts/build-cjs.mjs`)
    process.exit(1)
  }
} else {
  mkdirSync(path.join(root, 'miniprogram_dist'), { recursive: true })
  for (const [file, text] of Object.entries(outputs)) writeFileSync(path.join(root, file), text)
}
