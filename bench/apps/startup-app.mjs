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
console.log(JSON.stringify({ cjs }));
