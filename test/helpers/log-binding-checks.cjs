// Preloaded (NODE_OPTIONS=--require) by test/unit/bindingCheck.test.ts: appends a line to
// $LMRUN_TEST_FORK_LOG each time node-llama-cpp really forks its binary check.
const childProcess = require("node:child_process");
const { appendFileSync } = require("node:fs");
const original = childProcess.fork;
childProcess.fork = function fork(modulePath, ...rest) {
  if (String(modulePath).endsWith("testBindingBinary.js")) appendFileSync(process.env.LMRUN_TEST_FORK_LOG, "fork\n");
  return original.call(this, modulePath, ...rest);
};
require("node:module").syncBuiltinESMExports();
