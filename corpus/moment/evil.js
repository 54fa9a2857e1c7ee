// Stands for any file an attacker can reach by path: it counts how often it was loaded.
globalThis.corpusEvilLoads = (globalThis.corpusEvilLoads ?? 0) + 1;
