/**
 * Transaction ids. A transaction reserved since migration 005 stores no id: its id is computed from
 * its key (wallet id, seq), so no index of ids has to be written for every transaction. It is a
 * UUIDv8 (RFC 9562): the seq in the first 48 bits, version 8, the format `001` in the next 12, the
 * variant, and the wallet id in the last 62 bits. `transaction_id(wallet_id, seq)` in SQL (migration
 * 005) computes the same. Rows reserved before keep the random (v4) id they were given.
 */

export interface TransactionKey {
  walletId: number;
  seq: number;
}

export function transactionIdOf(key: TransactionKey): string {
  const seq = BigInt(key.seq).toString(16).padStart(12, '0');
  const wallet = ((1n << 63n) | BigInt(key.walletId)).toString(16).padStart(16, '0');
  return `${seq.slice(0, 8)}-${seq.slice(8, 12)}-8001-${wallet.slice(0, 4)}-${wallet.slice(4)}`;
}

const COMPUTED = /^([0-9a-f]{8})-([0-9a-f]{4})-8001-([89ab][0-9a-f]{3})-([0-9a-f]{12})$/;

/** The key an id was computed from; null for any other id (a stored one, or none of ours). */
export function transactionKeyOf(id: string): TransactionKey | null {
  const match = COMPUTED.exec(id.toLowerCase());
  if (!match) return null;
  const seq = BigInt(`0x${match[1]}${match[2]}`);
  const walletId = BigInt(`0x${match[3]}${match[4]}`) & ((1n << 62n) - 1n);
  if (seq < 1n || walletId < 1n || walletId > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { walletId: Number(walletId), seq: Number(seq) };
}
