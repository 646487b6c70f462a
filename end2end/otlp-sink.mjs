// A stand-in OTLP/HTTP collector for the browser tests: accepts every export with 200 and an
// empty (valid) protobuf response, and keeps nothing. With it, Flowscope samples and exports
// its spans, so runs carry span ids and the trace links the tests click are complete.
import http from 'node:http';

const port = Number(process.argv[2] ?? 4318);
http
  .createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    });
  })
  .listen(port, '127.0.0.1');
