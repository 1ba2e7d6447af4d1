import { randomFillSync } from 'node:crypto';

/**
 * UUID version 7 (RFC 9562): 48 bits of Unix time in milliseconds, then a 12-bit counter, then 62
 * random bits. Ids made by one process increase strictly (the counter orders ids of one
 * millisecond, and borrows the next millisecond when it runs out), so rows keyed by them are
 * appended at the right edge of their index instead of landing on a random leaf page.
 */
const random = Buffer.alloc(8 * 256);
let randomOffset = random.length;
let lastMs = 0;
let counter = 0;

export function uuidV7(now = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    counter = 0;
  } else if (++counter > 0xfff) {
    lastMs += 1;
    counter = 0;
  }
  if (randomOffset === random.length) {
    randomFillSync(random);
    randomOffset = 0;
  }
  const bytes = Buffer.allocUnsafe(16);
  bytes.writeUIntBE(lastMs, 0, 6);
  bytes.writeUInt16BE(0x7000 | counter, 6);
  random.copy(bytes, 8, randomOffset, randomOffset + 8);
  randomOffset += 8;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
