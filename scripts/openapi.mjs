// Writes the API's OpenAPI document, as `hull serve` publishes it at /openapi.json, to
// docs/api/openapi.json (the checked-in copy a unit test compares with the server's).
import { writeFileSync } from 'node:fs';
import { openApiDocument } from '../dist/src/serve/openapi.js';

writeFileSync('docs/api/openapi.json', `${JSON.stringify(openApiDocument(), null, 2)}\n`);
