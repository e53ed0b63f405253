// for await over glob() or a readline interface reads files and lines, not a request body.
import { glob } from 'node:fs/promises';
import readline from 'node:readline';

export async function listFiles() {
  const found = [];
  for await (const file of glob('**/*.json')) {
    found.push(file); // ok: js-unbounded-body-concat
  }
  return found;
}

export async function readLines(input) {
  const rl = readline.createInterface({ input });
  const lines = [];
  for await (const line of rl) {
    lines.push(line); // ok: js-unbounded-body-concat
  }
  return lines;
}

export async function readRequest(request) {
  const parts = [];
  for await (const part of request.body) {
    parts.push(part); // expect: js-unbounded-body-concat
  }
  return parts;
}
