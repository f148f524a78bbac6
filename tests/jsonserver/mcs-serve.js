// mock-config-server's database mode (a json-server-like REST API from a JSON file), on 127.0.0.1 only:
//   node mcs-serve.js PORT /abs/path/db.json
const express = require('express');
const { createDatabaseMockServer } = require('mock-config-server');

const [port, data] = process.argv.slice(2);
const app = express();
app.use(require('./faults'));
createDatabaseMockServer({ data }, app).listen(Number(port), '127.0.0.1');
