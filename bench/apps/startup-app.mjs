// Benchmark app for start-up time: loads a large dependency tree (Express, Fastify and their dependencies, plus a
// few common libraries — about 300 modules), builds an app with each, then exits printing how many modules loaded.
import { createRequire } from 'node:module';
import * as acorn from 'acorn';
import express from 'express';
import Fastify from 'fastify';
import yaml from 'js-yaml';
import semver from 'semver';
import { loadItem, renderItem } from './catalog.mjs';

const app = express();
app.get('/items/:id', (req, res) => res.send(renderItem(loadItem(Number(req.params.id)), { user: 'x' })));

const fastify = Fastify({ logger: false });
fastify.get('/items/:id', async (req) => renderItem(loadItem(Number(req.params.id)), { user: 'x' }));
await fastify.ready();
await fastify.close();

// Touch each library once so that its lazy parts load as they would in a real start-up.
acorn.parse('const a = 1;', { ecmaVersion: 'latest' });
yaml.load('a: 1');
semver.satisfies('1.2.3', '^1.0.0');

const cjs = Object.keys(createRequire(import.meta.url).cache).length;
// The process's own CPU time so far (every thread, so the loader's hooks thread on Node 20 counts too): the driver
// compares it beside the wall time, which on a shared machine also counts time other processes held the CPU.
const cpu = process.cpuUsage();
console.log(JSON.stringify({ cjs, cpuMs: (cpu.user + cpu.system) / 1000 }));
