import { createRequire } from 'node:module';
import path from 'node:path';
import { Router } from 'express';
import helmet from 'helmet';
import { openApiJson } from './openapi.js';

/** swagger-ui's files, served from node_modules: the page needs nothing from the internet. */
const SWAGGER_UI_DIR = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

/**
 * The only files of swagger-ui-dist the page loads; the rest of the package (its package.json,
 * source maps, other bundles and HTML pages) is not served.
 */
const ASSETS: readonly string[] = ['swagger-ui-bundle.js', 'swagger-ui.css', 'favicon-32x32.png'];

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Wallet service API</title>
  <link rel="icon" href="/docs/assets/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
`;

// A file, not an inline script, so the page's CSP can forbid inline scripts.
const INIT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });\n`;

/**
 * swagger-ui needs scripts and styles from this origin, inline styles (it sets style attributes)
 * and data: images (its icons); nothing from elsewhere. "Try it out" calls this origin.
 */
const docsPolicy = helmet.contentSecurityPolicy({
  useDefaults: false,
  directives: {
    defaultSrc: ["'none'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'", "'unsafe-inline'"],
    imgSrc: ["'self'", 'data:'],
    fontSrc: ["'self'", 'data:'],
    connectSrc: ["'self'"],
    baseUri: ["'none'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
  },
});

/** `GET /openapi.json` and the interactive reference at `GET /docs`; open to everyone. */
export function docsRoutes(): Router {
  const router = Router();

  router.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(openApiJson());
  });

  router.get('/docs', docsPolicy, (_req, res) => {
    res.type('text/html').send(PAGE);
  });

  router.get('/docs/init.js', docsPolicy, (_req, res) => {
    res.type('text/javascript').send(INIT);
  });

  for (const asset of ASSETS) {
    router.get(`/docs/assets/${asset}`, docsPolicy, (_req, res, next) => {
      res.sendFile(asset, { root: SWAGGER_UI_DIR, maxAge: '1h' }, (error?: Error) => error && next(error));
    });
  }

  return router;
}
