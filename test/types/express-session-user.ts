// Type-level test, checked by `npm run typecheck`: the Express middleware's callbacks receive
// Express's own `Request`, so what an app's auth middleware declares on it is there — here
// passport's `req.user`, declared as @types/passport declares it, with the app's `Express.User`.
import express from 'express';
import type { Router } from 'pg-replica-router';
import { consistency } from 'pg-replica-router/express';

declare global {
  namespace Express {
    // The application's user type.
    interface User {
      id: string;
    }
    // What @types/passport adds to every Express request.
    interface Request {
      user?: User | undefined;
    }
  }
}

declare const router: Router;
const app = express();

// The README's and docs/express.md's line, as written.
app.use(consistency(router, { session: (req) => req.user?.id }));

// Express's request methods and parsed parts are there too (not only node's IncomingMessage).
app.use(consistency(router, { session: (req) => req.get('x-api-key'), clientLevels: (req) => req.ip === '127.0.0.1' }));

// A key must still be a string or number.
// @ts-expect-error a user object is not a session key
app.use(consistency(router, { session: (req) => req.user }));
