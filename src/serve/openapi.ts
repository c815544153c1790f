import { VERSION } from '../version.js';
import { API_ROUTES, type ApiRoute } from './api-routes.js';
import { type SchemaName, schemas } from './api-schemas.js';

/** Where the server publishes the document; docs/api/openapi.json is the checked-in copy. */
export const OPENAPI_PATH = '/openapi.json';

const STATUS_TEXT: Record<number, string> = {
  101: 'Switching to the WebSocket protocol',
  200: 'OK',
  201: 'Created',
  204: 'Done, no content',
};

const ref = (name: SchemaName) => ({ $ref: `#/components/schemas/${name}` });
const binary = { type: 'string', format: 'binary' };
const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: ref('ApiError') } },
});

function parameters(route: ApiRoute) {
  const out: unknown[] = [];
  for (const where of ['params', 'querystring'] as const) {
    const name = route[where];
    if (!name) continue;
    const schema = schemas[name] as { properties: Record<string, unknown>; required?: readonly string[] };
    for (const [param, paramSchema] of Object.entries(schema.properties)) {
      out.push({
        name: param,
        in: where === 'params' ? 'path' : 'query',
        required: where === 'params' || Boolean(schema.required?.includes(param)),
        schema: paramSchema,
        ...(where === 'querystring' && (paramSchema as { type?: string }).type === 'array'
          ? { style: 'form', explode: true }
          : {}),
      });
    }
  }
  return out;
}

function operation(route: ApiRoute) {
  const responses: Record<string, unknown> = {};
  for (const [status, body] of Object.entries(route.responses)) {
    const description = STATUS_TEXT[Number(status)] ?? 'OK';
    if (body === null) responses[status] = { description };
    else if (body === 'binary')
      responses[status] = { description, content: { 'application/octet-stream': { schema: binary } } };
    else responses[status] = { description, content: { 'application/json': { schema: ref(body) } } };
  }
  responses['4XX'] = errorResponse('Refused: the body says why, with a stable code');
  responses['5XX'] = errorResponse('Failed: the body says why, with a stable code');
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.websocket ? { 'x-websocket': true } : {}),
    parameters: parameters(route),
    ...(route.body
      ? {
          requestBody: {
            required: true,
            content:
              route.body === 'binary'
                ? { 'application/octet-stream': { schema: binary } }
                : { 'application/json': { schema: ref(route.body) } },
          },
        }
      : {}),
    responses,
  };
}

/** The OpenAPI 3.1 document, built from the routes and schemas the server checks requests with. */
export function openApiDocument() {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of API_ROUTES) {
    const path = route.url.replace(/:([A-Za-z]+)/g, '{$1}');
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'hull sandboxes API',
      version: VERSION,
      description:
        'Sandboxes (a container in its own VM) from container images: commands, files, time to live. Served by `hull serve`; on TCP every request needs `Authorization: Bearer TOKEN`.',
    },
    servers: [{ url: 'http://localhost' }],
    components: {
      schemas,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    },
    security: [{ bearer: [] }],
    paths,
  };
}
