'use strict';
// A deploy hook collects its child process's output: that stream is not a request body.
const { spawn } = require('child_process');

function deploy(name, done) {
  const child = spawn('sh', [`./${name}.sh`]);
  const out = [];
  child.stdout.on('data', (buffer) => {
    out.push(buffer); // ok: js-unbounded-body-concat
  });
  child.stdout.on('end', () => done(Buffer.concat(out).toString()));
}

module.exports = { deploy };
