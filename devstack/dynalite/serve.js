// The local stack's DynamoDB: dynalite on 127.0.0.1, tables in LevelDB, as one process the stack can watch.
//   node serve.js <install dir> <port> <LevelDB dir>
// Prints one JSON line ({"port": N}) once it listens; SIGTERM closes the server and LevelDB; it also stops when
// the process that started it goes away, as every other part of the local stack does.
//
// dynalite has no transactions; TransactWriteItems and TransactGetItems are added here on top of its own
// operations (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html):
// transactions run one at a time; each Put, Update and Delete runs as the single conditional write it stands for,
// with ReturnValues ALL_OLD; when one fails its condition, the writes already made are undone from their old
// images and the answer is TransactionCanceledException with a CancellationReasons entry per item, as in AWS.
// Unlike AWS, a plain write of another client can land between two writes of a transaction (locally, the
// transactions are the ingest's claims of one notification, which nothing else writes). ConditionCheck items are
// refused with a ValidationException.
//
// dynalite also drops ReturnValuesOnConditionCheckFailure. AWS answers a PutItem, UpdateItem or DeleteItem whose
// condition fails, when the request sets it to ALL_OLD, with the item as it was: the ConditionalCheckFailedException
// carries it as Item, absent when there was no item
// (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html#DDB-UpdateItem-request-ReturnValuesOnConditionCheckFailure,
// the same parameter in API_PutItem.html and API_DeleteItem.html; in a transaction, the failed item's
// CancellationReason carries it: API_CancellationReason.html). dynalite is taught the parameter here: the item it
// evaluated the condition on, under its lock of the item, is added to the error, so it is exactly the one the
// condition failed on.
'use strict'
const http = require('http')
const path = require('path')
const [installDir, port, dataDir, host = '127.0.0.1'] = process.argv.slice(2)
const dynaliteDir = path.join(installDir, 'node_modules', 'dynalite')
const dynalite = require(dynaliteDir)
returnItemOnConditionCheckFailure(require(path.join(dynaliteDir, 'db')), (action) =>
  require(path.join(dynaliteDir, 'validations', action)))
// Tables are ACTIVE at once (AWS takes seconds; waiting locally helps nobody).
const server = dynalite({ path: dataDir, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
const API = 'DynamoDB_20120810'
const agent = new http.Agent({ keepAlive: true })
const keySchemas = new Map()
let queue = Promise.resolve()

function call (operation, body) {
  // One operation of dynalite itself, on its own address (it checks that a request is signed, not the signature).
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body)
    const request = http.request({
      host: server.address().address,
      port: server.address().port,
      method: 'POST',
      path: '/',
      agent,
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'content-length': Buffer.byteLength(payload),
        'x-amz-target': `${API}.${operation}`,
        'x-amz-date': new Date().toISOString().replace(/[-:]|\.\d{3}/g, ''),
        authorization: 'AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, ' +
          'SignedHeaders=host;x-amz-date, Signature=local',
      },
    }, (response) => {
      const chunks = []
      response.on('data', (chunk) => chunks.push(chunk))
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString()
        resolve({ status: response.statusCode, body: text ? JSON.parse(text) : {} })
      })
    })
    request.on('error', reject)
    request.end(payload)
  })
}

async function keyOf (table, item) {
  if (!keySchemas.has(table)) {
    const described = await call('DescribeTable', { TableName: table })
    if (described.status !== 200) return null
    keySchemas.set(table, described.body.Table.KeySchema.map((k) => k.AttributeName))
  }
  return Object.fromEntries(keySchemas.get(table).map((name) => [name, item[name]]))
}

function returnItemOnConditionCheckFailure (db, validation) {
  // dynalite 4 (pinned in package-lock.json) keeps a request's known parameters only (each action's
  // validations.types) and has its PutItem, UpdateItem and DeleteItem call db.checkConditional(request, item) with
  // the item it read under the item's lock; a failed condition comes back as an error whose body is the answer.
  const actions = ['putItem', 'updateItem', 'deleteItem']
  if (typeof db.checkConditional !== 'function' || !actions.every((action) => validation(action).types)) {
    throw new Error('dynalite changed: ReturnValuesOnConditionCheckFailure cannot be added (devstack/dynalite/serve.js)')
  }
  for (const action of actions) {
    validation(action).types.ReturnValuesOnConditionCheckFailure = { type: 'String', enum: ['ALL_OLD', 'NONE'] }
  }
  const checkConditional = db.checkConditional
  db.checkConditional = function (data, existingItem) {
    const failed = checkConditional.apply(this, arguments)
    if (failed && failed.body && existingItem && data.ReturnValuesOnConditionCheckFailure === 'ALL_OLD') {
      failed.body.Item = existingItem
    }
    return failed
  }
}

function conditional (request) {
  return { ...request, ReturnValues: 'ALL_OLD' }
}

async function transactWrite (data) {
  const items = data.TransactItems || []
  const done = [] // [table, key, old image or undefined]
  for (let index = 0; index < items.length; index++) {
    const item = items[index]
    const [kind] = Object.keys(item)
    const request = item[kind]
    const operation = { Put: 'PutItem', Update: 'UpdateItem', Delete: 'DeleteItem' }[kind]
    if (!operation) {
      await undo(done)
      return [400, { __type: 'com.amazon.coral.validate#ValidationException',
        message: `The local DynamoDB does not support ${kind} in transactions` }]
    }
    const answer = await call(operation, conditional(request))
    if (answer.status !== 200) {
      await undo(done)
      if ((answer.body.__type || '').endsWith('#ConditionalCheckFailedException')) {
        const failed = { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' }
        if (answer.body.Item) failed.Item = answer.body.Item // the item's ReturnValuesOnConditionCheckFailure
        const reasons = items.map((_, i) => i === index ? failed : { Code: 'None' })
        return [400, {
          __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
          message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(', ')}]`,
          CancellationReasons: reasons,
        }]
      }
      return [answer.status, answer.body]
    }
    const key = request.Key || await keyOf(request.TableName, request.Item)
    done.push([request.TableName, key, answer.body.Attributes])
  }
  return [200, {}]
}

async function undo (done) {
  for (const [table, key, old] of done.reverse()) {
    if (old) await call('PutItem', { TableName: table, Item: old })
    else await call('DeleteItem', { TableName: table, Key: key })
  }
}

async function transactGet (data) {
  const responses = []
  for (const item of data.TransactItems || []) {
    const answer = await call('GetItem', { ...item.Get, ConsistentRead: true })
    if (answer.status !== 200) return [answer.status, answer.body]
    responses.push(answer.body.Item ? { Item: answer.body.Item } : {})
  }
  return [200, { Responses: responses }]
}

const transactions = { TransactWriteItems: transactWrite, TransactGetItems: transactGet }
const [dynaliteHandler] = server.listeners('request')
server.removeAllListeners('request')
server.on('request', (req, res) => {
  const [api, operation] = (req.headers['x-amz-target'] || '').split('.')
  const transaction = api === API && transactions[operation]
  if (!transaction) return dynaliteHandler(req, res)
  const chunks = []
  req.on('data', (chunk) => chunks.push(chunk))
  req.on('end', () => {
    queue = queue.then(async () => {
      let status, body
      try {
        [status, body] = await transaction(JSON.parse(Buffer.concat(chunks).toString() || '{}'))
      } catch (error) {
        [status, body] = [500, { __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: String(error) }]
      }
      const text = JSON.stringify(body)
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', 'content-length': Buffer.byteLength(text) })
      res.end(text)
    })
  })
})

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
server.listen(Number(port), host, () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n')
})
