// Test launcher for @vercel/cosmosdb-server: serves it over HTTPS with the test certificate,
// after replacing two of its handlers so they answer as Cosmos DB does. Nothing on disk is
// changed; the replacements live in this process only.
//
//   node cosmosdb-server.js <package dir> <cert.pem> <key.pem> <port> [advertised host]
//
// Both must be installed before the package's router is loaded: the router reads
// each handler's `default` export once, when it is first required.
"use strict";
const fs = require("fs");
const path = require("path");

const [packageDir, certPath, keyPath, port, advertised] = process.argv.slice(2);
const advertisedHost = advertised || "127.0.0.1";
const handler = (name) => require(path.join(packageDir, "lib", "handler", name));

// 1. A point read of a missing item: the handler dereferences the missing item and the
//    server answers 500. Cosmos DB answers 404.
const read = handler("read-document");
const readDocument = read.default;
read.default = async (account, req, res, params) => {
  try {
    return await readDocument(account, req, res, params);
  } catch (err) {
    if (err instanceof TypeError && /undefined/.test(err.message)) {
      res.statusCode = 404;
      return { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
    }
    throw err;
  }
};

// 2. Transactional batches. The package's handler applies operations one by one and keeps
//    those before a failure, and it takes each replace, delete or read operation's partition
//    key from a per-operation `partitionKey` field that Cosmos DB does not have (the SDK sends
//    the batch's partition key once, as a header), so those operations fail with 500. Cosmos
//    DB applies all or none, in the header's partition: on a failure it answers with the
//    failing operation's status, that operation's result, and 424 (Failed Dependency) for the
//    others. This handler does that with the package's own single-operation functions. The
//    package replaces (never mutates in place) the container's maps on every write, so copies
//    of them are a faithful snapshot to restore.
const batch = handler("batch-documents");
const operations = handler("_document-operations");
const readJson = require(path.join(packageDir, "lib", "json")).default;
const byType = {
  Create: operations.createOperation,
  Upsert: operations.upsertOperation,
  Read: operations.readOperation,
  Replace: operations.replaceOperation,
  Delete: operations.deleteOperation,
};
batch.default = async (account, req, res, { dbId, collId }) => {
  const body = await readJson(req);
  const collection = account.database(dbId).collection(collId);
  if (!collection.read()) {
    res.statusCode = 404;
    return {};
  }
  if (!Array.isArray(body)) {
    res.statusCode = 400;
    return { message: "Invalid request body" };
  }
  const partitionKey = req.headers["x-ms-documentdb-partitionkey"];
  const items = collection.documents;
  const snapshot = { data: new Map(items._data), index: new Map(items._index) };
  const restore = () => {
    items._data = snapshot.data;
    items._index = snapshot.index;
  };
  const results = [];
  for (let i = 0; i < body.length; i += 1) {
    const input = body[i] || {};
    const operation = byType[input.operationType];
    if (!operation) {
      restore();
      res.statusCode = 400;
      return { message: `Operation type '${input.operationType}' is not supported in Batch.` };
    }
    let result;
    try {
      result = operation(collection, { ...input, partitionKey: input.partitionKey || partitionKey });
    } catch (err) {
      restore();
      throw err;
    }
    if (result.statusCode >= 400) {
      restore();
      res.statusCode = result.statusCode;
      return body.map((_, j) => ({ statusCode: j === i ? result.statusCode : 424, requestCharge: 0 }));
    }
    results.push({
      statusCode: result.statusCode,
      requestCharge: 1,
      eTag: result.body ? result.body._etag : undefined,
      resourceBody: result.body,
    });
  }
  return results;
};

const { createHttpsServer } = require(packageDir);
const server = createHttpsServer({ cert: fs.readFileSync(certPath), key: fs.readFileSync(keyPath) });
// The account document advertises the server's address: make it the host clients use (the
// SDK's emulator switches recognise `localhost`), while listening on 127.0.0.1 only.
const address = server.address.bind(server);
server.address = () => {
  const a = address();
  return a && typeof a === "object" ? { ...a, address: advertisedHost } : a;
};
server.on("error", (err) => {
  console.error(err);
  process.exit(1);
});
server.listen(Number(port), "127.0.0.1", () => {
  console.error(`cosmosdb-server listening on https://${advertisedHost}:${port}/`);
});
