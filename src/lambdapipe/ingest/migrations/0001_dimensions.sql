-- The shop's dimensions: users and products, owned by the app role.
-- updated_at is kept by the database (trigger), so no writer can forget it.

CREATE TABLE users (
    user_id           uuid PRIMARY KEY,
    email             text NOT NULL,
    first_name        text NOT NULL,
    last_name         text NOT NULL,
    date_of_birth     date,
    registration_date date NOT NULL,
    country           char(2) NOT NULL,
    city              text NOT NULL,
    tier              text NOT NULL CHECK (tier IN ('bronze', 'silver', 'gold', 'platinum')),
    is_active         boolean NOT NULL DEFAULT true,
    last_login        timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- one account per address; also the lookup a login or a support agent does
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
-- batch jobs and churn read recently changed rows ("what changed since")
CREATE INDEX users_updated_at_idx ON users (updated_at);

CREATE TABLE products (
    product_id  uuid PRIMARY KEY,
    name        text NOT NULL,
    category    text NOT NULL,
    subcategory text NOT NULL,
    brand       text NOT NULL,
    price       numeric(10, 2) NOT NULL CHECK (price >= 0),
    cost        numeric(10, 2) NOT NULL CHECK (cost >= 0),
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- catalogue browsing and category reports filter by category
CREATE INDEX products_category_idx ON products (category, subcategory);
CREATE INDEX products_updated_at_idx ON products (updated_at);

CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END $$;

CREATE TRIGGER users_touch BEFORE UPDATE ON users
    FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW) EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER products_touch BEFORE UPDATE ON products
    FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW) EXECUTE FUNCTION touch_updated_at();

-- Debezium's heartbeat writes here, so the replication slot advances while users and products
-- are idle (the server's other databases keep producing WAL the slot would otherwise hold).
CREATE TABLE debezium_heartbeat (
    id integer PRIMARY KEY,
    beat_at timestamptz NOT NULL
);

-- Full row images in the WAL: update and delete events carry every column, not only the key.
ALTER TABLE users REPLICA IDENTITY FULL;
ALTER TABLE products REPLICA IDENTITY FULL;

-- The publication Debezium reads, created here by the tables' owner (creating a publication
-- needs ownership, which the Debezium role must not have).
CREATE PUBLICATION lambdapipe_dims FOR TABLE users, products, debezium_heartbeat;
