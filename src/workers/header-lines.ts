/**
 * Header lines as text (`name: value\r\n`), kept for the next head that has the same one.
 *
 * Most lines of a proxied head repeat from one request to the next: the forwarding headers
 * name the same peer and host, Via is a constant, a client sends the same Host and
 * User-Agent on every request of its connection. Rendering them anew made three to four
 * strings per line, and the request head was the worker's largest allocation per request
 * (~1.1 KB of ~4 KB: docs/decisions.md, "Fewer bytes allocated per request"). A line found
 * here costs two string comparisons and no allocation.
 *
 * The cache is direct-mapped and small: a slot is picked from the lengths and first
 * characters, a different line in the slot replaces it, and a miss costs what rendering did
 * before. Values over VALUE_MAX characters are rendered and not kept, so the cache holds at
 * most SLOTS short lines. One per thread per line shape; the worker is single-threaded.
 *
 * Must never: return a line for a name and value that differ from the ones asked for.
 */

const SLOTS = 64;
const VALUE_MAX = 256;

export class HeaderLines {
  private readonly names: string[] = new Array<string>(SLOTS).fill('');
  private readonly values: string[] = new Array<string>(SLOTS).fill('');
  private readonly lines: string[] = new Array<string>(SLOTS).fill('');
  /** Lines rendered because they were not here (tests; a hit adds nothing). */
  rendered = 0;

  /** `crlfFirst`: lines as `\r\nname: value` (uWS's writeStatus block) instead of `name: value\r\n`. */
  constructor(private readonly crlfFirst: boolean) {}

  line(name: string, value: string): string {
    const vl = value.length;
    // From what stays put for a unique value (a request id differs only in its last digits),
    // so such a line keeps to one slot instead of evicting the others in turn.
    const i = (name.length * 31 + vl * 7 + name.charCodeAt(0) + (vl === 0 ? 0 : value.charCodeAt(0))) & (SLOTS - 1);
    if (this.values[i] === value && this.names[i] === name) return this.lines[i] as string;
    this.rendered++;
    const line = this.crlfFirst ? `\r\n${name}: ${value}` : `${name}: ${value}\r\n`;
    if (vl <= VALUE_MAX) {
      this.names[i] = name;
      this.values[i] = value;
      this.lines[i] = line;
    }
    return line;
  }
}
