/**
 * HTTP binding of the SCIM layer: an encapsulated fastify plugin mounted at the SCIM base path, so
 * its body parser, error handler, 404 handler and authentication hook apply to SCIM routes only.
 *
 * This runs on the main thread and does no SCIM work: it routes, checks the token (onRequest),
 * receives the body as bytes (no JSON.parse here) and hands method, path, query, the headers that
 * matter and the bytes to a ScimHost (host/host.ts: by default a worker thread with its own SQLite
 * connection), then sends back the status, headers and bytes it answers. Discovery endpoints are
 * static and answered here.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ScimError } from './errors.js';
import { SCIM_CONTENT_TYPE, toScimError, type ScimFault, type ScimWireRequest } from './host/handler.js';
import type { ScimHost } from './host/host.js';
import { advertisedLimits, type ScimLimits } from './limits.js';
import { GROUPS } from './resources/groups.js';
import type { ResourceKind } from './resources/kind.js';
import { USERS } from './resources/users.js';
import { ALL_SCHEMAS, LIST_RESPONSE, publishAttribute, RESOURCE_TYPES, type ResourceTypeDef, type SchemaDef } from './schema.js';

export { SCIM_CONTENT_TYPE, toScimError };

export interface RouteOptions {
  host: ScimHost;
  limits: ScimLimits;
  authenticate: (req: FastifyRequest) => Promise<void>;
  basePath: string;
  /** Absolute URL of the SCIM base for meta.location; derived from the request when absent. */
  publicUrl?: string;
}

function send(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).header('content-type', SCIM_CONTENT_TYPE).send(body);
}

/** A fault the host reports, as an Error for the log (its stack is the host's, never sent to a client). */
function faultError(f: ScimFault): Error {
  const e = new Error(f.message);
  e.name = f.name;
  if (f.stack !== undefined) e.stack = f.stack;
  return e;
}

function schemaResource(s: SchemaDef, base: string): Record<string, unknown> {
  return {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:Schema'],
    id: s.id,
    name: s.name,
    description: s.description,
    attributes: s.attributes.map(publishAttribute),
    meta: { resourceType: 'Schema', location: `${base}/Schemas/${s.id}` },
  };
}

function resourceTypeResource(rt: ResourceTypeDef, base: string): Record<string, unknown> {
  return {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:ResourceType'],
    id: rt.name,
    name: rt.name,
    endpoint: rt.endpoint,
    description: rt.description,
    schema: rt.schema.id,
    schemaExtensions: rt.extensions.map((e) => ({ schema: e.id, required: false })),
    meta: { resourceType: 'ResourceType', location: `${base}/ResourceTypes/${rt.name}` },
  };
}

function listOf(resources: unknown[]): Record<string, unknown> {
  return { schemas: [LIST_RESPONSE], totalResults: resources.length, startIndex: 1, itemsPerPage: resources.length, Resources: resources };
}

const header = (req: FastifyRequest, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
};

export async function scimPlugin(app: FastifyInstance, opts: RouteOptions): Promise<void> {
  const host = opts.host;
  const bodyLimit = opts.limits.maxPayloadSize;
  const baseOf = (req: FastifyRequest): string => opts.publicUrl ?? `${req.protocol}://${req.host}${opts.basePath}`;

  app.removeContentTypeParser('application/json');
  // SCIM speaks JSON only: a text/plain body is a 415, not a string that fails validation later.
  app.removeContentTypeParser('text/plain');
  // The body stays bytes on this thread: the host parses it (a 10 MB JSON.parse here would hold
  // the loop that answers /healthz and sign-in). Size is still enforced here, while receiving.
  app.addContentTypeParser(['application/json', 'application/scim+json'], { parseAs: 'buffer', bodyLimit }, async (_req: FastifyRequest, body: string | Buffer) =>
    typeof body === 'string' ? Buffer.from(body, 'utf8') : body,
  );

  app.addHook('onRequest', async (req) => {
    try {
      await opts.authenticate(req);
    } catch (err) {
      if (err instanceof ScimError || (err as { statusCode?: number }).statusCode !== undefined) throw err;
      req.log.warn({ err }, 'SCIM authentication failed');
      throw new ScimError(401, undefined, 'authentication required');
    }
  });

  app.setErrorHandler((err, req, reply) => {
    const e = toScimError(err);
    if (e.status >= 500) req.log.error({ err }, 'SCIM request failed');
    if (e.status === 401 && !reply.hasHeader('www-authenticate')) reply.header('www-authenticate', 'Bearer');
    return send(reply, e.status, e.toBody());
  });

  app.setNotFoundHandler((req, reply) => {
    send(reply, 404, new ScimError(404, undefined, `no SCIM endpoint ${req.method} ${req.url.split('?')[0]}`).toBody());
  });

  /** Hands the request to the host and sends its answer. */
  const forward = async (req: FastifyRequest, reply: FastifyReply, path: string): Promise<FastifyReply> => {
    const wire: ScimWireRequest = { method: req.method, path, query: { ...(req.query as ScimWireRequest['query']) }, baseUrl: baseOf(req) };
    const ifMatch = header(req, 'if-match');
    const ifNoneMatch = header(req, 'if-none-match');
    if (ifMatch !== undefined) wire.ifMatch = ifMatch;
    if (ifNoneMatch !== undefined) wire.ifNoneMatch = ifNoneMatch;
    if (Buffer.isBuffer(req.body) && req.body.byteLength > 0) wire.body = req.body;
    const res = await host.handle(wire);
    for (const f of res.faults ?? []) req.log.error({ err: faultError(f) }, f.context);
    reply.code(res.status).headers(res.headers);
    return res.body ? reply.send(Buffer.from(res.body.buffer, res.body.byteOffset, res.body.byteLength)) : reply.send();
  };

  // ---- discovery -------------------------------------------------------------------------------

  app.get('/ServiceProviderConfig', async (req, reply) => {
    const base = baseOf(req);
    return send(reply, 200, {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
      documentationUri: 'https://github.com/idsync/idsync/blob/main/docs/cloud-directory.md',
      ...advertisedLimits(opts.limits),
      changePassword: { supported: false },
      sort: { supported: true },
      etag: { supported: true },
      authenticationSchemes: [
        {
          type: 'oauthbearertoken',
          name: 'OAuth Bearer Token',
          description: 'Authentication with an OAuth 2.0 bearer token from the cloud directory token endpoint.',
          specUri: 'https://www.rfc-editor.org/info/rfc6750',
          primary: true,
        },
      ],
      meta: { resourceType: 'ServiceProviderConfig', location: `${base}/ServiceProviderConfig` },
    });
  });

  app.get('/Schemas', async (req, reply) => send(reply, 200, listOf(ALL_SCHEMAS.map((s) => schemaResource(s, baseOf(req))))));
  app.get<{ Params: { id: string } }>('/Schemas/:id', async (req, reply) => {
    const s = ALL_SCHEMAS.find((x) => x.id.toLowerCase() === req.params.id.toLowerCase());
    if (!s) throw new ScimError(404, undefined, `schema ${req.params.id} not found`);
    return send(reply, 200, schemaResource(s, baseOf(req)));
  });
  app.get('/ResourceTypes', async (req, reply) => send(reply, 200, listOf(RESOURCE_TYPES.map((rt) => resourceTypeResource(rt, baseOf(req))))));
  app.get<{ Params: { id: string } }>('/ResourceTypes/:id', async (req, reply) => {
    const rt = RESOURCE_TYPES.find((x) => x.name.toLowerCase() === req.params.id.toLowerCase());
    if (!rt) throw new ScimError(404, undefined, `resource type ${req.params.id} not found`);
    return send(reply, 200, resourceTypeResource(rt, baseOf(req)));
  });

  // ---- resources (worked on by the host) ---------------------------------------------------

  for (const kind of [USERS, GROUPS] as ResourceKind[]) {
    const ep = kind.type.endpoint;
    type P = { Params: { id: string } };
    const one = (req: FastifyRequest<P>) => `${ep}/${encodeURIComponent(req.params.id)}`;
    app.post(ep, { bodyLimit }, (req, reply) => forward(req, reply, ep));
    app.get(ep, (req, reply) => forward(req, reply, ep));
    app.post(`${ep}/.search`, { bodyLimit }, (req, reply) => forward(req, reply, `${ep}/.search`));
    app.get<P>(`${ep}/:id`, (req, reply) => forward(req, reply, one(req)));
    app.put<P>(`${ep}/:id`, { bodyLimit }, (req, reply) => forward(req, reply, one(req)));
    app.patch<P>(`${ep}/:id`, { bodyLimit }, (req, reply) => forward(req, reply, one(req)));
    app.delete<P>(`${ep}/:id`, (req, reply) => forward(req, reply, one(req)));
  }

  app.post('/Bulk', { bodyLimit }, (req, reply) => forward(req, reply, '/Bulk'));
}
