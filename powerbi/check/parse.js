// Parses each Power Query (M) file named on the command line with Microsoft's own parser.
// Prints "ok FILE" or "FILE:LINE:COLUMN: message" per file; exits 1 when any file fails.
"use strict";
const fs = require("fs");
const PQP = require("@microsoft/powerquery-parser");

function where(error) {
  // Lex errors and parse errors keep their position in different places.
  const inner = error.innerError || {};
  const token = inner.foundToken && inner.foundToken.token ? inner.foundToken.token : inner.token;
  const position = (token && token.positionStart) || inner.graphemePosition || inner.position;
  return position ? `${position.lineNumber + 1}:${(position.lineCodeUnit ?? position.columnNumber ?? 0) + 1}` : "?:?";
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node parse.js FILE.pq ...");
    return 2;
  }
  let failed = 0;
  for (const file of files) {
    const text = fs.readFileSync(file, "utf8");
    const task = await PQP.TaskUtils.tryLexParse(PQP.DefaultSettings, text);
    if (PQP.TaskUtils.isOk(task)) {
      console.log(`ok ${file}`);
    } else {
      failed += 1;
      console.log(`${file}:${where(task.error)}: ${task.error.message}`);
    }
  }
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (error) => {
  console.error(error);
  process.exit(2);
});
