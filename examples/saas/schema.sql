-- The demo's multi-tenant SaaS schema: tenants (accounts) and their staff
-- (users), their own customers, orders and payments, support tickets with
-- free text and JSON metadata, and product events. pgveil.yaml beside this
-- file holds the masking rules for every column.

CREATE TABLE accounts (
  id          bigserial PRIMARY KEY,
  name        text NOT NULL,
  plan        text NOT NULL CHECK (plan IN ('free', 'team', 'business', 'enterprise')),
  country     char(2) NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id             bigserial PRIMARY KEY,
  account_id     bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  email          text NOT NULL UNIQUE,
  full_name      text NOT NULL,
  password_hash  text NOT NULL,
  role           text NOT NULL DEFAULT 'member',
  last_login_at  timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customers (
  id          bigserial PRIMARY KEY,
  account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  email       text NOT NULL,
  full_name   text NOT NULL,
  phone       text,
  street      text,
  city        text,
  zip         text,
  country     char(2),
  birth_date  date,
  notes       text,
  profile     jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  deleted_at  timestamptz
);
CREATE INDEX ON customers (account_id);

CREATE TABLE orders (
  id                bigserial PRIMARY KEY,
  account_id        bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  customer_id       bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
  status            text NOT NULL DEFAULT 'pending',
  total             numeric(12,2) NOT NULL,
  currency          char(3) NOT NULL DEFAULT 'EUR',
  shipping_address  text,
  created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON orders (customer_id);

CREATE TABLE payments (
  id          bigserial PRIMARY KEY,
  order_id    bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  amount      numeric(12,2) NOT NULL,
  method      text NOT NULL,
  card_last4  char(4),
  iban        text,
  paid_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE support_tickets (
  id           bigserial PRIMARY KEY,
  account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  customer_id  bigint REFERENCES customers (id) ON DELETE SET NULL,
  subject      text NOT NULL,
  body         text NOT NULL,
  metadata     jsonb NOT NULL DEFAULT '{}',
  status       text NOT NULL DEFAULT 'open',
  created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
  id           bigserial PRIMARY KEY,
  account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  user_id      bigint REFERENCES users (id) ON DELETE SET NULL,
  kind         text NOT NULL,
  ip           inet,
  properties   jsonb NOT NULL DEFAULT '{}',
  occurred_at  timestamptz NOT NULL DEFAULT now()
);
