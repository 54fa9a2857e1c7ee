require('node:worker_threads').parentPort.postMessage(1);
