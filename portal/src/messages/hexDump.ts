/**
 * The raw bytes of a message (base64 in the API) as a classic hex dump:
 * offset, 16 bytes in hex, the printable ASCII beside them. What a firmware
 * developer compares with the device's log.
 */

export interface HexLine {
  offset: string;
  hex: string;
  ascii: string;
}

export const BYTES_PER_LINE = 16;

/** The bytes of a base64 text; throws on text that is not base64. */
export function base64Bytes(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function printable(byte: number): string {
  return byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : ".";
}

export function hexLines(bytes: Uint8Array): HexLine[] {
  const lines: HexLine[] = [];
  for (let at = 0; at < bytes.length; at += BYTES_PER_LINE) {
    const chunk = Array.from(bytes.subarray(at, at + BYTES_PER_LINE));
    lines.push({
      offset: at.toString(16).padStart(8, "0"),
      hex: chunk.map((byte) => byte.toString(16).padStart(2, "0")).join(" "),
      ascii: chunk.map(printable).join(""),
    });
  }
  return lines;
}
