// Seed 000's Node.js/Express endpoint, as the article wrote it.
const crypto = require('crypto');
app.post('/sign', (req, res) => {
let body = '';
req.on('data', chunk => body += chunk); // expect: js-unbounded-body-concat
req.on('end', () => {
const hmac = crypto.createHmac('sha256', process.env.SECRET_KEY);
hmac.update(body);
const signature = hmac.digest('hex');
res.json({ signature });
});
});
