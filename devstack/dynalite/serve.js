// The local stack's DynamoDB: dynalite on 127.0.0.1, tables in LevelDB, as one process the stack can watch.
//   node serve.js <install dir> <port> <LevelDB dir>
// Prints one JSON line ({"port": N}) once it listens; SIGTERM closes the server and LevelDB; it also stops when
// the process that started it goes away, as every other part of the local stack does.
'use strict'
const path = require('path')
const [installDir, port, dataDir] = process.argv.slice(2)
const dynalite = require(path.join(installDir, 'node_modules', 'dynalite'))
// Tables are ACTIVE at once (AWS takes seconds; waiting locally helps nobody).
const server = dynalite({ path: dataDir, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
const parent = process.ppid
let stopping = false
function stop () {
  if (stopping) return
  stopping = true
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 5000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', () => {}) // the stack stops us after the functions
setInterval(() => { if (process.ppid !== parent) stop() }, 1000).unref()
server.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n')
})
