import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Where webhooks may go. A subscriber's URL is chosen by whoever holds an admin key, and the
 * worker POSTs to it from inside our network: without these rules a subscription could reach
 * Redis on 127.0.0.1:6379, a cloud metadata service or any private host (SSRF). The rules apply
 * at registration (IP literals, in every form WHATWG URL normalizes) and again at connect time,
 * to the addresses DNS gave, so a name that resolves (or later rebinds) to such an address is
 * refused too.
 */

const blocked = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // "this network", incl. the unspecified 0.0.0.0
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, incl. the cloud metadata service 169.254.169.254
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, incl. broadcast
] as const) {
  blocked.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['64:ff9b:1::', 48], // local-use NAT64
  ['fc00::', 7], // unique-local, incl. AWS's metadata fd00:ec2::254
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated, still routed by some stacks)
  ['ff00::', 8], // multicast
] as const) {
  blocked.addSubnet(network, prefix, 'ipv6');
}

/** IPv4 addresses carried inside IPv6 ones that reach the IPv4 host: NAT64 and 6to4. */
function embeddedIpv4(address: string): string | null {
  const lower = address.toLowerCase();
  const nat64 = /^64:ff9b::(?:ffff:)?([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  const sixToFour = /^2002:([0-9a-f]{1,4}):([0-9a-f]{1,4}):/.exec(lower);
  const [high, low] = (nat64 ?? sixToFour)?.slice(1) ?? [];
  if (high === undefined || low === undefined) return null;
  const word = (parseInt(high, 16) << 16) | parseInt(low, 16);
  return [24, 16, 8, 0].map((shift) => (word >>> shift) & 0xff).join('.');
}

/**
 * True for an address a webhook must never reach: loopback, private, link-local (metadata),
 * unique-local, CGNAT, unspecified, multicast, reserved, also as IPv4-mapped, NAT64 or 6to4 IPv6
 * (BlockList matches IPv4 rules against `::ffff:a.b.c.d` itself). Anything that is not an IP
 * address counts as disallowed.
 */
export function isDisallowedAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 4) return blocked.check(bare, 'ipv4');
  if (family !== 6) return true;
  if (blocked.check(bare, 'ipv6')) return true;
  const inner = embeddedIpv4(bare);
  return inner !== null && blocked.check(inner, 'ipv4');
}

/** Names that always mean this host (RFC 6761), whatever DNS says. */
function isLocalhostName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}

/**
 * Why a webhook URL may not be registered, or null when it may. Only the host is judged here,
 * as WHATWG URL normalized it (`2130706433`, `0x7f.1` and `127.1` are all 127.0.0.1); names
 * are judged again at connect time, after DNS.
 */
export function webhookTargetProblem(url: string): string | null {
  let hostname: string;
  try {
    hostname = new URL(url).hostname;
  } catch {
    return 'must be a URL';
  }
  if (isLocalhostName(hostname)) return 'must not point at this host';
  if (isIP(hostname.replace(/^\[|\]$/g, '')) === 0) return null;
  return isDisallowedAddress(hostname)
    ? 'must not point at a loopback, private, link-local or other internal address'
    : null;
}

/** A connection attempt the target rules refused; delivery treats it like an unreachable subscriber. */
export class DisallowedTargetError extends Error {
  readonly code = 'EDISALLOWEDTARGET';
  constructor(host: string, address: string) {
    super(`webhook target ${host} resolves to ${address}, an internal address`);
  }
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for http(s).request / net.connect: resolves as usual, then refuses the connection
 * when any address is disallowed. The socket connects only to addresses checked here, so DNS
 * rebinding between a check and the connect cannot slip through.
 */
export function guardedLookup(
  hostname: string,
  options: LookupOneOptions | LookupAllOptions,
  callback: LookupCallback,
): void {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, []);
    const refused = addresses.find((entry) => isDisallowedAddress(entry.address));
    if (refused) return callback(new DisallowedTargetError(hostname, refused.address), []);
    if (options.all) return callback(null, addresses);
    const first = addresses[0];
    if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
    callback(null, first.address, first.family);
  });
}
