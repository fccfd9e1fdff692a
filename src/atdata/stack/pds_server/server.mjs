// atdata local ATProto stack: an in-memory PLC directory and the reference PDS
// (@atproto/pds) in one Node >= 22 process, listening on 127.0.0.1 only.
//
// Started by atdata.stack.pds.start_pds(); not meant to be run by hand.
//
// Environment read:
//   ATDATA_PDS_HOME        install dir holding node_modules (required)
//   ATDATA_PDS_STATE       state dir: data/, blobs/, ready.env (required)
//   ATDATA_PDS_PARENT_PID  exit when this process is gone (optional)
//   PDS_PORT, PLC_PORT     ports to use (optional; free ports otherwise)
//   PDS_*                  any other PDS setting, passed through to the PDS
// Writes $ATDATA_PDS_STATE/ready.env (KEY=VALUE lines, no secrets) once both servers listen.

import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { createRequire } from 'node:module'

const LOOPBACK = '127.0.0.1'
const home = path.resolve(process.env.ATDATA_PDS_HOME)
const state = path.resolve(process.env.ATDATA_PDS_STATE)
const requireFromHome = createRequire(path.join(home, 'package.json'))

// Neither server has a bind-address setting: both call listen(port). Route every
// listen() that names no host to the loopback interface.
const originalListen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') {
    args.splice(1, 0, LOOPBACK)
  } else if (args[0] && typeof args[0] === 'object' && 'port' in args[0] && !args[0].host) {
    args[0] = { ...args[0], host: LOOPBACK }
  }
  return originalListen.apply(this, args)
}

function pickPort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().once('error', reject)
    probe.listen(0, LOOPBACK, () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

const plcPort = Number(process.env.PLC_PORT) || (await pickPort())
const pdsPort = Number(process.env.PDS_PORT) || (await pickPort())
const plcUrl = `http://${LOOPBACK}:${plcPort}`
// With PDS_HOSTNAME=localhost and dev mode, the PDS advertises http://localhost:<port>
// in every DID document it creates; clients must use this exact origin.
const pdsUrl = `http://localhost:${pdsPort}`

// PLC directory on its mock (in-memory) database: identities vanish on exit.
const plcLib = requireFromHome('@did-plc/server')
const plc = plcLib.PlcServer.create({ db: plcLib.Database.mock(), port: plcPort })
await plc.start()

const settings = {
  PDS_HOSTNAME: 'localhost',
  PDS_PORT: String(pdsPort),
  PDS_DATA_DIRECTORY: path.join(state, 'data'),
  PDS_BLOBSTORE_DISK_LOCATION: path.join(state, 'blobs'),
  PDS_DID_PLC_URL: plcUrl,
  PDS_JWT_SECRET: crypto.randomBytes(16).toString('hex'),
  PDS_DPOP_SECRET: crypto.randomBytes(32).toString('hex'),
  PDS_ADMIN_PASSWORD: crypto.randomBytes(12).toString('hex'),
  PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: crypto.randomBytes(32).toString('hex'),
  PDS_DEV_MODE: 'true',
  PDS_INVITE_REQUIRED: 'false',
  PDS_RATE_LIMITS_ENABLED: 'false',
  PDS_BLOB_UPLOAD_LIMIT: String(100 * 1024 * 1024),
  PDS_CRAWLERS: '',
}
for (const [key, value] of Object.entries(settings)) {
  if (!process.env[key]) process.env[key] = value
}
fs.mkdirSync(process.env.PDS_DATA_DIRECTORY, { recursive: true })
fs.mkdirSync(process.env.PDS_BLOBSTORE_DISK_LOCATION, { recursive: true })

const { PDS } = await import(requireFromHome.resolve('@atproto/pds'))
const pds = await PDS.fromEnv()
await pds.start()

const ready = {
  PDS_URL: pdsUrl,
  PLC_URL: plcUrl,
  PDS_HANDLE_DOMAIN: '.test',
  PDS_BLOB_UPLOAD_LIMIT: process.env.PDS_BLOB_UPLOAD_LIMIT,
  PDS_PID: String(process.pid),
}
const readyText = Object.entries(ready).map(([k, v]) => `${k}=${v}`).join('\n') + '\n'
const readyPath = path.join(state, 'ready.env')
fs.writeFileSync(readyPath + '.tmp', readyText)
fs.renameSync(readyPath + '.tmp', readyPath)
console.log(`atdata PDS listening: PDS ${pdsUrl} PLC ${plcUrl} pid ${process.pid}`)

let stopping = false
async function shutdown(code = 0) {
  if (stopping) return
  stopping = true
  await pds.destroy().catch((err) => console.error(err))
  await plc.destroy().catch((err) => console.error(err))
  process.exit(code)
}
process.on('SIGTERM', () => shutdown(0))
process.on('SIGINT', () => shutdown(0))

// Do not outlive the Python process that started us (for example a killed test run).
const parentPid = Number(process.env.ATDATA_PDS_PARENT_PID)
if (parentPid) {
  setInterval(() => {
    try {
      process.kill(parentPid, 0)
    } catch {
      console.error(`parent process ${parentPid} is gone; shutting down`)
      shutdown(0)
    }
  }, 2000).unref()
}
