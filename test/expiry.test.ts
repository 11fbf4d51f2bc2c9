/**
 * Token expiry of open sockets (src/http/expiry.ts) on a fake clock, without sockets: when a close is
 * made, what a refresh or a close of the socket undoes, and how expiries due together are batched.
 */
import { describe, expect, test } from 'bun:test';
import { CLOCK_TOLERANCE_SECONDS } from '../src/auth/tokens.ts';
import { createExpiries, type ExpiryState } from '../src/http/expiry.ts';
import { fakeClock } from './clock.ts';

/** A socket as expiry sees it: its state, and a name to tell closes apart. */
type FakeSocket = ExpiryState & { readonly name: string };

function setup() {
  const clock = fakeClock();
  const closed: string[] = [];
  const expiries = createExpiries<FakeSocket>(
    (socket) => socket,
    (socket) => void closed.push(socket.name),
    clock,
  );
  const socket = (name: string): FakeSocket => ({ name, expiry: undefined, deadline: undefined });
  return { clock, closed, expiries, socket };
}

/** One turn of the event loop: closes are made a macrotask after their timer fires. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

const deadlineOf = (exp: number) => (exp + CLOCK_TOLERANCE_SECONDS) * 1000;

describe('token expiry of open sockets (fake clock, no sockets)', () => {
  test('closes a socket at exp plus the tolerance, not a millisecond before', async () => {
    const { clock, closed, expiries, socket } = setup();
    const exp = clock.seconds() + 60;
    expiries.expireAt(socket('a'), exp);
    clock.advanceTo(deadlineOf(exp) - 1);
    await turn();
    expect(closed).toEqual([]);
    clock.advance(1);
    await turn();
    expect(closed).toEqual(['a']);
  });

  test('a refresh moves the deadline and a cleared socket keeps no timer', async () => {
    const { clock, closed, expiries, socket } = setup();
    const [a, b] = [socket('a'), socket('b')];
    const exp = clock.seconds() + 60;
    expiries.expireAt(a, exp);
    expiries.expireAt(b, exp);
    expiries.expireAt(a, exp + 600);
    expiries.clear(b);
    expect(clock.pending).toBe(1);
    clock.advanceTo(deadlineOf(exp));
    await turn();
    expect(closed).toEqual([]);
    clock.advanceTo(deadlineOf(exp + 600));
    await turn();
    expect(closed).toEqual(['a']);
  });

  test('an expiry without exp (a refresh to no token) cancels the timer', async () => {
    const { clock, closed, expiries, socket } = setup();
    const a = socket('a');
    expiries.expireAt(a, clock.seconds() + 60);
    expiries.expireAt(a, undefined);
    expect(clock.pending).toBe(0);
    expect(a.deadline).toBeUndefined();
    clock.advance(3_600_000);
    await turn();
    expect(closed).toEqual([]);
  });

  test("an exp beyond setTimeout's 32-bit range is re-armed in steps and still closes on time", async () => {
    const { clock, closed, expiries, socket } = setup();
    // 60 days: more than 2^31 - 1 ms (about 24.8 days).
    const exp = clock.seconds() + 60 * 86_400;
    expiries.expireAt(socket('a'), exp);
    clock.advanceTo(deadlineOf(exp) - 1);
    await turn();
    expect(closed).toEqual([]);
    expect(clock.pending).toBe(1);
    clock.advance(1);
    await turn();
    expect(closed).toEqual(['a']);
  });

  test('a socket refreshed while its close waits in the queue stays open', async () => {
    const { clock, closed, expiries, socket } = setup();
    const [a, b] = [socket('a'), socket('b')];
    const exp = clock.seconds() + 60;
    expiries.expireAt(a, exp);
    expiries.expireAt(b, exp);
    clock.advanceTo(deadlineOf(exp));
    // Both timers fired; the closes wait for the next macrotask, and a refresh of `a` lands first.
    expiries.expireAt(a, exp + 600);
    await turn();
    expect(closed).toEqual(['b']);
  });

  test('expiries due together are closed a batch per macrotask, every one of them in the end', async () => {
    const { clock, closed, expiries, socket } = setup();
    const exp = clock.seconds() + 60;
    for (let i = 0; i < 1000; i++) expiries.expireAt(socket(`s${i}`), exp);
    clock.advanceTo(deadlineOf(exp));
    await turn();
    expect(closed.length).toBeGreaterThan(0);
    expect(closed.length).toBeLessThan(1000);
    while (closed.length < 1000) await turn();
    expect(closed).toEqual(Array.from({ length: 1000 }, (_, i) => `s${i}`));
  });
});
