import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { isDate, isDateTime, isEmail, isUri, isUuid } from '../src/schema/formats.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

describe('date-time (RFC 3339)', () => {
  test.each([
    // RFC 3339 §5.8, every example
    '1985-04-12T23:20:50.52Z',
    '1996-12-19T16:39:57-08:00',
    '1990-12-31T23:59:60Z',
    '1990-12-31T15:59:60-08:00',
    '1937-01-01T12:00:27.87+00:20',
    // §5.6 NOTE: "t" and "z" may be lower case; §4.3: -00:00 is an unknown local offset
    '1985-04-12t23:20:50z',
    '1985-04-12T23:20:50-00:00',
    '2000-02-29T00:00:00Z',
    '2024-02-29T12:00:00.123456789+14:00',
  ])('accepts %s', (text) => {
    expect(isDateTime(text)).toBe(true);
  });

  test.each([
    '1985-04-12 23:20:50Z',
    '1985-04-12T23:20:50',
    '1985-04-12T23:20Z',
    '1985-04-12T23:20:50.Z',
    '1985-04-12T24:00:00Z',
    '1985-04-12T23:60:00Z',
    '1985-04-12T23:20:61Z',
    '1985-04-12T23:20:50+0800',
    '1985-04-12T23:20:50+24:00',
    '1985-13-12T23:20:50Z',
    '1985-04-31T23:20:50Z',
    '1900-02-29T00:00:00Z',
    '85-04-12T23:20:50Z',
    '1985-04-12T23:20:50Z ',
    '１９８５-04-12T23:20:50Z',
  ])('refuses %s', (text) => {
    expect(isDateTime(text)).toBe(false);
  });
});

describe('date-time leap seconds (RFC 3339 §5.7, Appendix D)', () => {
  test.each([
    ['1998-12-31T23:59:60Z', 'at the end of December in UTC'],
    ['2015-06-30T23:59:60Z', 'at the end of June in UTC'],
    ['1998-12-31t23:59:60z', 'with lower-case "t" and "z"'],
    ['2016-12-31T23:59:60.999999Z', 'with a fraction of the leap second'],
    ['2024-03-31T23:59:60Z', 'at the end of March, a second-preference month'],
    ['2023-09-30T23:59:60Z', 'at the end of September, a second-preference month'],
    ['2024-02-29T23:59:60Z', 'at the end of February in a leap year'],
    ['2023-02-28T23:59:60Z', 'at the end of February in a common year'],
    ['1998-12-31T15:59:60.123-08:00', 'west of UTC with a fraction, 23:59:60.123Z'],
    ['2016-12-31T00:00:60-23:59', 'at the widest offset west of UTC, 23:59:60Z the same day'],
    ['1999-01-01T00:59:60+01:00', 'east of UTC on the next day and year, 1998-12-31T23:59:60Z'],
    ['2015-07-01T05:29:60+05:30', 'east of UTC on the next day and month, 2015-06-30T23:59:60Z'],
    ['2017-01-01T23:58:60+23:59', 'at the widest offset east of UTC, 2016-12-31T23:59:60Z'],
    ['1998-12-31T23:59:60-00:00', 'with the unknown local offset -00:00'],
    ['1998-12-31T23:59:60+00:00', 'with the offset +00:00'],
  ])('accepts %s, a leap second %s', (text) => {
    expect(isDateTime(text)).toBe(true);
  });

  test.each([
    ['1998-12-15T23:59:60Z', 'in the middle of a month'],
    ['1998-12-30T23:59:60Z', 'at 23:59:60Z on the day before the last'],
    ['2024-02-28T23:59:60Z', 'on February 28 of a leap year'],
    ['1999-01-01T23:59:60Z', 'at 23:59:60Z on the first of a month'],
    ['1998-12-31T22:59:60Z', 'at 22:59:60Z'],
    ['1998-12-31T23:58:60Z', 'at 23:58:60Z'],
    ['1998-12-31T12:00:60Z', 'at noon'],
    ['1998-12-15T23:59:60.5Z', 'with a fraction, mid-month'],
    ['1998-12-31T23:59:60+01:00', 'whose offset puts it at 22:59:60Z'],
    ['1998-12-31T15:59:60-07:00', 'whose offset puts it at 22:59:60Z'],
    ['1998-12-31T23:59:60.5+01:00', 'with a fraction, whose offset puts it at 22:59:60.5Z'],
    ['1998-12-31T23:59:60-00:01', 'whose offset puts it on the next day at 00:00:60Z'],
    ['1998-12-31T00:59:60+01:00', 'whose offset puts it at 23:59:60Z on the day before the last'],
    ['1999-01-01T00:59:60+02:00', 'whose offset puts it on the previous day at 22:59:60Z'],
    ['1999-01-01T00:59:60-01:00', 'whose offset puts it at 01:59:60Z on the first of a month'],
    ['1999-01-01T00:59:60-00:00', 'with -00:00 on the first of a month, at 00:59:60Z'],
  ])('refuses %s, a leap second %s', (text) => {
    expect(isDateTime(text)).toBe(false);
  });
});

describe('date (RFC 3339 full-date)', () => {
  test.each(['1985-04-12', '2000-02-29', '2024-02-29', '1999-12-31', '0000-01-01'])('accepts %s', (text) => {
    expect(isDate(text)).toBe(true);
  });

  test.each([
    '1985-04-12T00:00:00Z',
    '1900-02-29',
    '2023-02-29',
    '2024-04-31',
    '2024-00-10',
    '2024-01-00',
    '2024-1-10',
    '20240110',
  ])('refuses %s', (text) => {
    expect(isDate(text)).toBe(false);
  });
});

describe('email (RFC 5321 Mailbox)', () => {
  test.each([
    'John.Doe@example.com',
    // RFC 3696 §3 (with errata 246: backslash escapes only inside quotes)
    '"Abc\\@def"@example.com',
    '"Fred\\ Bloggs"@example.com',
    '"Joe.\\\\Blow"@example.com',
    '"Abc@def"@example.com',
    '"Fred Bloggs"@example.com',
    'customer/department=shipping@example.com',
    '$A12345@example.com',
    '!def!xyz%abc@example.com',
    '_somename@example.com',
    '""@example.com',
    'user@localhost',
    // RFC 5321 §4.1.3 address literals
    'postmaster@[192.0.2.1]',
    'postmaster@[IPv6:2001:db8::1]',
    'postmaster@[IPv6:2001:db8:0:0:0:0:0:1]',
    'postmaster@[IPv6:::ffff:192.0.2.1]',
    'postmaster@[IPv6:2001:db8:1:2:3:4:192.0.2.1]',
  ])('accepts %s', (text) => {
    expect(isEmail(text)).toBe(true);
  });

  test.each([
    'Abc.example.com',
    'A@b@c@example.com',
    'a"b(c)d,e:f;g<h>i[j\\k]l@example.com',
    'just"not"right@example.com',
    'Abc\\@def@example.com',
    '.john@example.com',
    'john..doe@example.com',
    'john.@example.com',
    '@example.com',
    'user@',
    'user@-example.com',
    'user@example-.com',
    'user@example..com',
    'user@example.com.',
    'user name@example.com',
    'jöhn@example.com',
    `${'a'.repeat(65)}@example.com`,
    `user@${'a'.repeat(64)}.com`,
    'user@[256.1.1.1]',
    'user@[192.0.2]',
    'user@[IPv6:1:2:3:4:5:6:7::]',
    'user@[IPv6:1::2::3]',
    'user@[IPv6:12345::1]',
    'user@[x-tag:content]',
  ])('refuses %s', (text) => {
    expect(isEmail(text)).toBe(false);
  });
});

describe('uuid (RFC 9562)', () => {
  test.each([
    // RFC 9562 Appendix A examples (v1, v3, v4, v5, v6, v7, v8) plus nil and max (§5.9, §5.10)
    'C232AB00-9414-11EC-B3C8-9F6BDECED846',
    '5df41881-3aed-3515-88a7-2f4a814cf09e',
    '919108f7-52d1-4320-9bac-f847db4148a8',
    '2ed6657d-e927-568b-95e1-2665a8aea6a2',
    '1EC9414C-232A-6B00-B3C8-9F6BDECED846',
    '017F22E2-79B0-7CC3-98C4-DC0C0C07398F',
    '2489E9AD-2EE2-8E00-8EC9-32D5F69181C0',
    '00000000-0000-0000-0000-000000000000',
    'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
  ])('accepts %s', (text) => {
    expect(isUuid(text)).toBe(true);
  });

  test.each([
    '919108f752d143209bacf847db4148a8',
    '{919108f7-52d1-4320-9bac-f847db4148a8}',
    'urn:uuid:919108f7-52d1-4320-9bac-f847db4148a8',
    '919108f7-52d1-4320-9bac-f847db4148a',
    '919108f7-52d1-4320-9bac-f847db4148a8a',
    '919108g7-52d1-4320-9bac-f847db4148a8',
    '919108f7-52d14320-9bac-f847-db4148a8',
  ])('refuses %s', (text) => {
    expect(isUuid(text)).toBe(false);
  });
});

describe('uri (RFC 3986 absolute URI)', () => {
  test.each([
    // RFC 3986 §1.1.2, every example
    'ftp://ftp.is.co.za/rfc/rfc1808.txt',
    'http://www.ietf.org/rfc/rfc2396.txt',
    'ldap://[2001:db8::7]/c=GB?objectClass?one',
    'mailto:John.Doe@example.com',
    'news:comp.infosystems.www.servers.unix',
    'tel:+1-816-555-1212',
    'telnet://192.0.2.16:80/',
    'urn:oasis:names:specification:docbook:dtd:xml:4.1.2',
    // §3 example and other corners of the grammar
    'foo://example.com:8042/over/there?name=ferret#nose',
    'urn:example:animal:ferret:nose',
    'http://user:pa%20ss@example.com/a%2Fb?q=%7E#frag/?',
    'http://[::1]:8080/',
    'http://[v7.fe80::1]/',
    'http://[::ffff:192.0.2.1]/',
    'file:///etc/hosts',
    'about:',
    'x:/absolute/path',
  ])('accepts %s', (text) => {
    expect(isUri(text)).toBe(true);
  });

  test.each([
    '//example.com/path',
    '/relative/path',
    'relative/path',
    '1http://example.com',
    'http://exa mple.com/',
    'http://example.com/%zz',
    'http://example.com/%4',
    'http://example.com/<tag>',
    'http://example.com/ü',
    'http://example.com/#a#b',
    'http://example.com:80a/',
    'http://[::1/',
    'http://[1::2::3]/',
    'http://[1:2:3:4:5:6:7:8:9]/',
    'http://[::256.0.0.1]/',
    'http://[::01.0.0.1]/',
    'http://ex[am]ple.com/',
    '',
  ])('refuses %s', (text) => {
    expect(isUri(text)).toBe(false);
  });
});
