/**
 * Secrets read from standard input, one per line: `idsync hash`, `idsync credentials set`, the
 * console's password and the wizard all read them this way (never from arguments, which the process
 * list shows to every user).
 */
import { IdsyncError } from '../core/errors.js';
import { MAX_PASSWORD_LENGTH } from './hash.js';

/** A UTF-16 code unit takes at most 3 bytes in UTF-8: longer lines cannot be usable passwords. */
const MAX_LINE_BYTES = MAX_PASSWORD_LENGTH * 3 + 1; // + a trailing \r

/** One input line, decoded and checked, or the error that names it. */
export type InputLine = { line: number; text: string } | { line: number; error: IdsyncError };

/**
 * Splits a byte stream into lines: every line ends at "\n" except possibly the last; the empty string
 * after a final "\n" is not a line. One trailing "\r" is removed. A UTF-8 BOM at the very start is
 * skipped. Lines that are not UTF-8 or that exceed `maxBytes` come back as errors (and end the input).
 */
export async function* readLines(input: AsyncIterable<Buffer | string>, maxBytes = MAX_LINE_BYTES): AsyncGenerator<InputLine> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let carry: Buffer[] = [];
  let carryLength = 0;
  let lineNo = 0;
  let first = true;

  const decode = (bytes: Buffer): InputLine => {
    lineNo++;
    let b = bytes;
    if (first) {
      first = false;
      if (b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) b = b.subarray(3);
    }
    if (b.length > 0 && b[b.length - 1] === 0x0d) b = b.subarray(0, b.length - 1);
    let text: string;
    try {
      text = decoder.decode(b);
    } catch {
      return {
        line: lineNo,
        error: new IdsyncError('PASSWORD_NOT_TEXT', `line ${lineNo} is not valid UTF-8 text`, {
          hint: 'Convert the input to UTF-8 (e.g. `iconv -f LATIN1 -t UTF-8`); one password per line.',
          details: { line: lineNo },
        }),
      };
    }
    return { line: lineNo, text };
  };
  const tooLong = (): InputLine => {
    lineNo++;
    return {
      line: lineNo,
      error: new IdsyncError('PASSWORD_TOO_LONG', `line ${lineNo} is longer than ${MAX_PASSWORD_LENGTH} characters (Active Directory's limit)`, {
        hint: 'Check the input: one password per line, each at most 256 characters.',
        details: { line: lineNo },
      }),
    };
  };

  for await (const raw of input) {
    let chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
    for (;;) {
      const nl = chunk.indexOf(0x0a);
      if (nl < 0) {
        if (carryLength + chunk.length > maxBytes) {
          yield tooLong();
          return;
        }
        if (chunk.length > 0) {
          carry.push(chunk);
          carryLength += chunk.length;
        }
        break;
      }
      if (carryLength + nl > maxBytes) {
        yield tooLong();
        return;
      }
      const bytes = carryLength > 0 ? Buffer.concat([...carry, chunk.subarray(0, nl)]) : chunk.subarray(0, nl);
      carry = [];
      carryLength = 0;
      const item = decode(bytes);
      yield item;
      if ('error' in item) return;
      chunk = chunk.subarray(nl + 1);
    }
  }
  if (carryLength > 0) yield decode(Buffer.concat(carry));
}

