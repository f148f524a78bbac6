// Faults for the gate's own tests, set by DEPLOYGATE_TEST_FAULT when a third-party server starts
// (json-server --middlewares, or the express app behind mock-config-server):
//   get-500       every GET under a collection answers 500
//   get-drop      every GET under a collection has its connection closed before an answer
//   delete-500    every DELETE answers 500; delete-500:N only the first N
let deletes = 0;

module.exports = (req, res, next) => {
  const [fault, count] = (process.env.DEPLOYGATE_TEST_FAULT || '').split(':');
  const inCollection = /^\/[^_]/.test(req.path) && req.path !== '/db';
  if (fault === 'get-500' && req.method === 'GET' && inCollection) {
    return res.status(500).json({ error: 'internal error' });
  }
  if (fault === 'get-drop' && req.method === 'GET' && inCollection) {
    return req.socket.destroy();
  }
  if (fault === 'delete-500' && req.method === 'DELETE') {
    deletes += 1;
    if (count === undefined || deletes <= Number(count)) {
      return res.status(500).json({ error: 'internal error' });
    }
  }
  return next();
};
