import { describe, expect, it } from 'vitest';
import { isDisallowedAddress, webhookTargetProblem } from '../../src/shared/events/webhook-targets.js';
import { loadConfig } from '../../src/shared/infra/config.js';

describe('isDisallowedAddress', () => {
  it.each([
    ['unspecified', '0.0.0.0'],
    ['"this network"', '0.1.2.3'],
    ['private 10/8', '10.0.0.1'],
    ['private 10/8, last', '10.255.255.255'],
    ['CGNAT 100.64/10, first', '100.64.0.1'],
    ['CGNAT 100.64/10, last', '100.127.255.254'],
    ['loopback', '127.0.0.1'],
    ['loopback, elsewhere in 127/8', '127.45.6.7'],
    ['link-local', '169.254.1.1'],
    ['the metadata service', '169.254.169.254'],
    ['private 172.16/12, first', '172.16.0.1'],
    ['private 172.16/12, last', '172.31.255.255'],
    ['IETF 192.0.0/24', '192.0.0.8'],
    ['private 192.168/16', '192.168.1.10'],
    ['benchmarking 198.18/15', '198.19.0.1'],
    ['multicast', '224.0.0.251'],
    ['broadcast', '255.255.255.255'],
    ['IPv6 unspecified', '::'],
    ['IPv6 loopback', '::1'],
    ['IPv6 loopback, long form', '0:0:0:0:0:0:0:1'],
    ['IPv6 link-local', 'fe80::1'],
    ['IPv6 link-local, end of fe80::/10', 'febf::1'],
    ['IPv6 link-local with a zone', 'fe80::1%eth0'],
    ['IPv6 unique-local fc00::/7', 'fc00::1'],
    ['IPv6 unique-local fd00::/8', 'fd12:3456::1'],
    ["AWS's IPv6 metadata", 'fd00:ec2::254'],
    ['IPv6 site-local', 'fec0::1'],
    ['IPv6 multicast', 'ff02::1'],
    ['IPv4-mapped loopback', '::ffff:127.0.0.1'],
    ['IPv4-mapped loopback, hex', '::ffff:7f00:1'],
    ['IPv4-mapped metadata', '::ffff:169.254.169.254'],
    ['IPv4-mapped private', '::ffff:10.1.2.3'],
    ['IPv4-mapped CGNAT', '::ffff:100.64.0.1'],
    ['IPv4-mapped 172.16/12', '::ffff:172.20.0.1'],
    ['IPv4-mapped 192.168/16', '::ffff:c0a8:101'],
    ['IPv4-mapped unspecified', '::ffff:0.0.0.0'],
    ['NAT64 of loopback', '64:ff9b::7f00:1'],
    ['NAT64 of the metadata service', '64:ff9b::a9fe:a9fe'],
    ['local-use NAT64', '64:ff9b:1::1'],
    ['6to4 of a private address', '2002:0a00:0001::1'],
    ['bracketed, as URL hosts are', '[::1]'],
    ['not an address at all', 'localhost'],
  ])('refuses %s (%s)', (_, address) => {
    expect(isDisallowedAddress(address)).toBe(true);
  });

  it.each([
    ['a public IPv4 address', '93.184.216.34'],
    ['just outside 100.64/10', '100.128.0.1'],
    ['just outside 172.16/12', '172.32.0.1'],
    ['just below 10/8', '9.255.255.255'],
    ['a public IPv6 address', '2606:2800:220:1:248:1893:25c8:1946'],
    ['an IPv4-mapped public address', '::ffff:93.184.216.34'],
    ['NAT64 of a public address', '64:ff9b::5db8:d822'],
  ])('allows %s (%s)', (_, address) => {
    expect(isDisallowedAddress(address)).toBe(false);
  });
});

describe('webhookTargetProblem', () => {
  it.each([
    'http://127.0.0.1:6379/',
    'http://169.254.169.254/latest/meta-data/',
    'http://[::ffff:127.0.0.1]/',
    'http://2130706433/',
    'http://0x7f.1/',
    'http://127.1/',
    'http://017700000001/',
    'http://10.0.0.5/hook',
    'http://172.16.3.4/hook',
    'http://192.168.0.1/hook',
    'http://100.64.1.1/hook',
    'http://0.0.0.0:3000/',
    'http://0/',
    'http://[::1]:8080/',
    'http://[fe80::1]/',
    'http://[fd00::1]/',
    'https://[fc00::abcd]/',
    'http://localhost:3000/hook',
    'http://LOCALHOST./hook',
    'http://api.localhost/hook',
  ])('refuses %s', (url) => {
    expect(webhookTargetProblem(url)).toMatch(/must not point/);
  });

  it.each(['https://example.com/wallet-events', 'http://93.184.216.34/hook', 'https://[2606:4700::1111]/hook'])(
    'allows %s (names are checked again after DNS, at connect time)',
    (url) => {
      expect(webhookTargetProblem(url)).toBeNull();
    },
  );
});

describe('WEBHOOK_ALLOW_PRIVATE_TARGETS', () => {
  it('is off unless set to exactly true', () => {
    expect(loadConfig({}).WEBHOOK_ALLOW_PRIVATE_TARGETS).toBe(false);
    expect(loadConfig({ WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' }).WEBHOOK_ALLOW_PRIVATE_TARGETS).toBe(true);
    expect(() => loadConfig({ WEBHOOK_ALLOW_PRIVATE_TARGETS: 'yes' })).toThrow(/WEBHOOK_ALLOW_PRIVATE_TARGETS/);
  });
});
