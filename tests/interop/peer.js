// Shared helpers for the interop tests: loads the real iroh peer (n0's Node.js binding,
// pinned in package.json), runs the iroh-c command, and a seeded random generator so a
// failing case can be replayed (IROH_TEST_SEED).
'use strict';
const path = require('path');
const { spawnSync } = require('child_process');

function loadIroh() {
  try {
    return require(path.join(__dirname, 'node_modules', '@number0', 'iroh'));
  } catch (e) {
    console.error('interop: the iroh test peer is not installed; run `make test` ' +
      '(scripts/install-deps.sh test installs it): ' + e.message);
    process.exit(1);
  }
}

const IROH_C = process.env.IROH_C;
if (!IROH_C) {
  console.error('interop: IROH_C (path of the iroh-c command) is not set; run through ctest');
  process.exit(1);
}

function run(args) {
  const r = spawnSync(IROH_C, args, { encoding: 'utf8', timeout: 20000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// xorshift128+ on BigInt-free 32-bit halves; enough for test data
function rng(seed) {
  let s = [seed >>> 0 || 1, 0x9e3779b9, 0x7f4a7c15, 0x85ebca6b];
  function next() {
    let t = s[3];
    let x = s[0];
    s[3] = s[2]; s[2] = s[1]; s[1] = x;
    t ^= t << 11; t ^= t >>> 8;
    s[0] = (t ^ x ^ (x >>> 19)) >>> 0;
    return s[0];
  }
  for (let i = 0; i < 16; i++) next();
  return {
    u32: next,
    int: (n) => next() % n,
    pick: (arr) => arr[next() % arr.length],
    bytes: (n) => Array.from({ length: n }, () => next() & 0xff),
  };
}

let passed = 0, failed = 0;
function check(cond, what) {
  if (cond) { passed++; return true; }
  failed++;
  if (failed <= 30) console.error('FAIL: ' + what);
  return false;
}
function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

module.exports = { loadIroh, run, rng, check, finish };
