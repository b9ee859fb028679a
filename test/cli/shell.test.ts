/** `faas shell` driven in a real terminal (tmux) against a real gateway and Docker. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FaasClient } from '@faas/sdk';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { BIN, ROOT, buildCli } from './build.js';
import { waitFor } from '../helpers/wait.js';


let gw: TestGateway;
let client: FaasClient;
let tmp: string;
const sandboxes: string[] = [];
const sessions: string[] = [];

// A tmux server of this test's own (-S: its socket in the test's folder), never the user's default one.
const tmux = (...args: string[]): string => execFileSync('tmux', ['-S', path.join(tmp, 'tmux.sock'), ...args], { encoding: 'utf8' });
const screen = (session: string): string => tmux('capture-pane', '-p', '-t', session);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts `faas shell ID` in a detached tmux session; the wrapper records its exit code and the tty settings. */
function startShell(name: string, id: string): { exitFile: string; sttyFile: string } {
  const exitFile = path.join(tmp, `${name}.exit`);
  const sttyFile = path.join(tmp, `${name}.stty`);
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = `FAAS_URL=${q(gw.url)} ${q(process.execPath)} ${q(BIN)} shell ${q(id)}; echo $? > ${q(exitFile)}.tmp; stty -a > ${q(sttyFile)}; mv ${q(exitFile)}.tmp ${q(exitFile)}; sleep 60`;
  tmux('new-session', '-d', '-s', name, '-x', '120', '-y', '40', `sh -c ${q(script)}`);
  sessions.push(name);
  return { exitFile, sttyFile };
}

beforeAll(async () => {
  buildCli();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-shell-test-'));
  gw = await startTestGateway();
  client = new FaasClient({ baseUrl: gw.url });
});
afterEach(async () => {
  for (const s of sessions.splice(0)) {
    try {
      tmux('kill-session', '-t', s);
    } catch {
      // already gone
    }
  }
  for (const id of sandboxes.splice(0)) await client.containers.delete(id).catch(() => undefined);
});
afterAll(async () => {
  await gw?.close();
  try {
    if (tmp) tmux('kill-server');
  } catch {
    // no server was started, or it ended with its last session
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('faas shell', () => {
  it('runs an interactive shell: input, Ctrl-C, resize, exit code, terminal restored', async () => {
    const box = await client.containers.create();
    sandboxes.push(box.id);
    const name = `faas-shell-${process.pid}`;
    const { exitFile, sttyFile } = startShell(name, box.id);
    const show = () => `--- screen ---\n${screen(name)}`;

    await waitFor('a prompt', () => /[#$] ?$/m.test(screen(name)), 15_000, show);
    tmux('send-keys', '-t', name, 'echo $((6*7))', 'Enter');
    await waitFor('42 on the screen', () => /^42\s*$/m.test(screen(name)), 10_000, show);

    // Ctrl-C reaches the remote process through the pty (the byte \x03), not our local process.
    tmux('send-keys', '-t', name, 'sleep 30; echo not-interrupted', 'Enter');
    await sleep(500);
    tmux('send-keys', '-t', name, 'C-c');
    tmux('send-keys', '-t', name, 'echo after-$((1+1))', 'Enter');
    await waitFor('the shell after Ctrl-C', () => /^after-2\s*$/m.test(screen(name)), 10_000, show);
    expect(screen(name)).not.toMatch(/^not-interrupted/m);

    // The window size reaches the remote pty, also after a resize.
    tmux('send-keys', '-t', name, 'stty size', 'Enter');
    await waitFor('the size', () => /^40 120\s*$/m.test(screen(name)), 10_000, show);
    tmux('resize-window', '-t', name, '-x', '100', '-y', '30');
    await sleep(300);
    tmux('send-keys', '-t', name, 'stty size', 'Enter');
    await waitFor('the new size', () => /^30 100\s*$/m.test(screen(name)), 10_000, show);

    tmux('send-keys', '-t', name, 'exit 5', 'Enter');
    await waitFor('the exit code file', () => fs.existsSync(exitFile), 10_000, show);
    expect(fs.readFileSync(exitFile, 'utf8').trim()).toBe('5');
    // Raw mode was undone: the terminal is back in canonical mode with echo.
    const stty = fs.readFileSync(sttyFile, 'utf8');
    expect(stty).toMatch(/(^|\s)icanon(\s|$)/);
    expect(stty).toMatch(/(^|\s)echo(\s|$)/);
  });

  it('fails in one line for an unknown sandbox', async () => {
    const name = `faas-shell-missing-${process.pid}`;
    const { exitFile } = startShell(name, 'no-such-sandbox');
    await waitFor('the exit code file', () => fs.existsSync(exitFile), 15_000, () => screen(name));
    expect(fs.readFileSync(exitFile, 'utf8').trim()).toBe('1');
    expect(screen(name)).toMatch(/faas shell: .*no-such-sandbox/);
  });
});
