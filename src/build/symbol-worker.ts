// A worker thread that computes one module's symbol table, so a big module's two versions are named in parallel
// with the main thread parsing them.
import { parentPort, workerData } from 'node:worker_threads';
import { loadSymbolTable } from './symbols.js';

const { source, format, file } = workerData as {
  source: string;
  format: 'module' | 'commonjs';
  file: string;
};
try {
  const symbolTable = await loadSymbolTable();
  parentPort?.postMessage({ table: symbolTable(source, format, file) });
} catch (e) {
  const err = e as Error & { code?: string };
  parentPort?.postMessage({ error: { message: err.message, code: err.code } });
}
