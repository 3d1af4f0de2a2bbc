// What README.md documents the server sends: the contract the client's texts are checked against.
import fs from 'node:fs';

const README = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

function section(heading) {
  const at = README.indexOf(heading);
  if (at < 0) throw new Error(`README.md has no ${JSON.stringify(heading)}`);
  return README.slice(at + heading.length);
}

/** The first cell of every row of the first table after `heading`. */
function firstColumn(heading) {
  const lines = section(heading).split('\n');
  const start = lines.findIndex((line) => line.startsWith('|'));
  const rows = [];
  for (const line of lines.slice(start + 2)) { // past the header and |---|
    if (!line.startsWith('|')) break;
    rows.push(line.split('|')[1].trim());
  }
  if (rows.length === 0) throw new Error(`README.md has no table under ${JSON.stringify(heading)}`);
  return rows;
}

export function documentedCloseCodes() {
  return firstColumn('### Close codes').map(Number);
}

export function documentedErrorCodes() {
  return firstColumn('### Error codes').map((cell) => cell.replaceAll('`', ''));
}

export function documentedLeaveReasons() {
  const paragraph = section('Leave reasons:').split('\n\n')[0];
  // "`left` (closed the connection), `switched` (...)": every other piece between backticks.
  return paragraph.split('`').filter((_, i) => i % 2 === 1);
}
