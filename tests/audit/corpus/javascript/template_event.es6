// An .es6 file (read like any JavaScript) with a template-literal event name.
const crypto = require('crypto');

export function handle(req, res) {
  let body = '';
  req.on(`data`, (chunk) => {
    body += chunk; // expect: js-unbounded-body-concat
  });
  req.on(`end`, () => res.end(crypto.createHmac('sha256', 'k').update(body).digest('hex')));
}
