import { UUID_REGEX } from 'valibot';

/*
 * The string formats an inline channel schema may name in `format`. Each check follows its RFC's grammar
 * exactly; valibot's own actions are used only where they already match (uuid). Its isoDateTime/isoDate
 * skip seconds, offsets or day-of-month ranges, email/rfcEmail accept neither quoted local parts nor address
 * literals, and url defers to WHATWG `new URL`, which is far looser than RFC 3986.
 */

// RFC 3339 §5.6; the §5.6 NOTE allows lower-case "t" and "z". The grammar allows second 60 at any time of
// any day; the §5.7 restriction is checked in code (isLeapSecond).
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/u;
const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})[Tt]([01]\d|2[0-3]):([0-5]\d):([0-5]\d|60)(?:\.\d+)?(?:[Zz]|([+-])([01]\d|2[0-3]):([0-5]\d))$/u;

// RFC 3339 §5.7 table, with the Appendix C leap-year rule.
function daysInMonth(year: number, month: number): number {
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return month === 2 ? (leap ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

const isValidDay = (year: number, month: number, day: number): boolean =>
  month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);

/*
 * RFC 3339 §5.7: second 60 may occur "at the end of months in which a leap second occurs", and "in time zones
 * other than "Z", the leap second point is shifted by the zone offset (so it happens at the same instant
 * around the globe)"; Appendix D: it is "an extra second at the end of a day in UTC", YYYY-MM-DDT23:59:60Z.
 * So local time minus the offset (§4.2; -00:00 is UTC too, §4.3) must be 23:59 UTC on the last day of a
 * month. Of any month: June and December are only "to date", Appendix D names March and September as second
 * preference, and which month ends really had one is IERS bulletin data (the RFC's table stops in 1998), not
 * knowable from the string. The JSON Schema Test Suite asks only for 23:59:60 UTC; refusing it on other days
 * is stricter, and none of the suite's date-time cases is on one.
 */
function isLeapSecond(year: number, month: number, day: number, localMinute: number, offset: number): boolean {
  const utcMinute = localMinute - offset;
  if (utcMinute === 23 * 60 + 59) return day === daysInMonth(year, month);
  // Offsets are under 24 hours, so the only other 23:59 UTC is on the day before, east of UTC. That day
  // ends a month exactly when the local day is the first (1999-01-01T00:59:60+01:00 is 1998-12-31T23:59:60Z).
  return utcMinute === -1 && day === 1;
}

/** Whether `text` is an RFC 3339 `full-date` (`2024-02-29`), with the month and day-of-month ranges enforced. */
export function isDate(text: string): boolean {
  const match = DATE.exec(text);
  return match !== null && isValidDay(Number(match[1]), Number(match[2]), Number(match[3]));
}

/**
 * Whether `text` is an RFC 3339 `date-time`: full-date "T" partial-time time-offset, e.g.
 * `1985-04-12T23:20:50.52Z`. A space instead of "T" is refused (the grammar has none), and so is a missing
 * offset; `-00:00` (unknown local offset, §4.3) is accepted. Second 60 is accepted only at 23:59:60 UTC on the
 * last day of a month, after applying the offset (`1990-12-31T15:59:60-08:00`), whatever the year or month.
 */
export function isDateTime(text: string): boolean {
  const match = DATE_TIME.exec(text);
  if (match === null) return false;
  const [, year, month, day, hour, minute, second, sign, offsetHour, offsetMinute] = match;
  const date = [Number(year), Number(month), Number(day)] as const;
  if (!isValidDay(...date)) return false;
  if (second !== '60') return true;
  // §4.2: the offset is local time minus UTC; "Z" has no sign and is UTC.
  const magnitude = Number(offsetHour) * 60 + Number(offsetMinute);
  const offset = sign === '-' ? -magnitude : sign === '+' ? magnitude : 0;
  return isLeapSecond(...date, Number(hour) * 60 + Number(minute), offset);
}

/** Whether `text` is a UUID in the RFC 9562 hyphenated 8-4-4-4-12 hex form, of any version, nil and max included. */
export function isUuid(text: string): boolean {
  // valibot's UUID_REGEX is exactly this grammar (hex either case, no version or variant restriction).
  return UUID_REGEX.test(text);
}

const H16 = /^[0-9A-Fa-f]{1,4}$/u;
const SNUM = /^\d{1,3}$/u;
const DEC_OCTET = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/u;

function isIpv4(text: string, octet: (part: string) => boolean): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every(octet);
}

// RFC 5321 Snum: 1*3DIGIT "representing a decimal integer value in the range 0 through 255".
const isSnum = (part: string): boolean => SNUM.test(part) && Number(part) <= 255;
const isDecOctet = (part: string): boolean => DEC_OCTET.test(part);

/*
 * Both RFCs spell IPv6 the same way (hex groups, one optional "::", an optional dotted IPv4 tail that counts
 * as two groups) and differ in two details: RFC 5321 §4.1.3 lets "::" stand in only when at most 6 groups
 * remain, RFC 3986 §3.2.2 at most 7; and their IPv4 octets are Snum versus dec-octet (no leading zeros).
 */
function isIpv6(text: string, maxCompressed: number, octet: (part: string) => boolean): boolean {
  const gap = text.indexOf('::');
  if (gap !== -1 && text.includes('::', gap + 1)) return false;
  const head = gap === -1 ? text : text.slice(0, gap);
  const tail = gap === -1 ? '' : text.slice(gap + 2);
  const groups = [...(head === '' ? [] : head.split(':')), ...(tail === '' ? [] : tail.split(':'))];
  let count = groups.length;
  const last = groups.at(-1);
  if (last?.includes('.')) {
    if (!isIpv4(last, octet)) return false;
    groups.pop();
    count += 1;
  }
  if (!groups.every((group) => H16.test(group))) return false;
  return gap === -1 ? count === 8 : count <= maxCompressed;
}

// RFC 5321 §4.1.2: Atom = 1*atext (RFC 5322 §3.2.3); quoted-pairSMTP = "\" %d32-126; qtextSMTP excludes " and \.
const DOT_STRING = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*$/u;
const QUOTED_STRING = /^"(?:[\x20\x21\x23-\x5B\x5D-\x7E]|\\[\x20-\x7E])*"$/u;
const DOMAIN = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/u;

function isMailDomain(domain: string): boolean {
  if (domain.startsWith('[') && domain.endsWith(']')) {
    const literal = domain.slice(1, -1);
    // ABNF literals are case-insensitive (RFC 5234 §2.3). General-address-literal tags must be IANA
    // registered and none but IPv6 is, so any other tag is refused.
    if (/^IPv6:/iu.test(literal)) return isIpv6(literal.slice(5), 6, isSnum);
    return isIpv4(literal, isSnum);
  }
  // RFC 5321 §4.5.3.1.2: 255 octets per domain; RFC 1035 §2.3.4: 63 per label.
  return domain.length <= 255 && DOMAIN.test(domain) && domain.split('.').every((label) => label.length <= 63);
}

/**
 * Whether `text` is an RFC 5321 §4.1.2 `Mailbox`: a dot-string or quoted-string local part of at most 64
 * octets, "@", then a domain or an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`). ASCII only: UTF-8
 * mailboxes (RFC 6531) are refused, and comments or folding white space (RFC 5322 CFWS) are not part of it.
 */
export function isEmail(text: string): boolean {
  // The local part may itself contain a quoted "@", the domain never does.
  const at = text.lastIndexOf('@');
  if (at < 1) return false;
  const local = text.slice(0, at);
  if (local.length > 64 || !(DOT_STRING.test(local) || QUOTED_STRING.test(local))) return false;
  return isMailDomain(text.slice(at + 1));
}

// RFC 3986 Appendix A, with the host's IP-literal checked separately because IPv6 is easier as code.
const PCT = '%[0-9A-Fa-f]{2}';
const PCHAR = `(?:[A-Za-z0-9\\-._~!$&'()*+,;=:@]|${PCT})`;
const USERINFO = `(?:[A-Za-z0-9\\-._~!$&'()*+,;=:]|${PCT})*`;
const REG_NAME = `(?:[A-Za-z0-9\\-._~!$&'()*+,;=]|${PCT})*`;
const AUTHORITY = `(?:${USERINFO}@)?(?:\\[([^\\]]*)\\]|${REG_NAME})(?::\\d*)?`;
const HIER_PART = `//${AUTHORITY}(?:/${PCHAR}*)*|/(?:${PCHAR}+(?:/${PCHAR}*)*)?|${PCHAR}+(?:/${PCHAR}*)*|`;
const URI = new RegExp(
  `^[A-Za-z][A-Za-z0-9+\\-.]*:(?:${HIER_PART})(?:\\?(?:${PCHAR}|[/?])*)?(?:#(?:${PCHAR}|[/?])*)?$`,
  'u',
);
const IP_FUTURE = /^[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+$/u;

/**
 * Whether `text` is an RFC 3986 §3 absolute `URI`: scheme ":" hier-part [ "?" query ] [ "#" fragment ],
 * every "%" followed by two hex digits. Relative references (`//host/x`, `/x`) are refused, and so are
 * characters outside the grammar (spaces, `<`, non-ASCII: those must be percent-encoded first).
 */
export function isUri(text: string): boolean {
  const match = URI.exec(text);
  if (match === null) return false;
  const literal = match[1];
  return literal === undefined || IP_FUTURE.test(literal) || isIpv6(literal, 7, isDecOctet);
}
