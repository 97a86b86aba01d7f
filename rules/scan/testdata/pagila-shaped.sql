-- Pagila's shape with realistic rows, for scan's tests and the end-to-end
-- test that replicates scan's proposal (replicate/e2e_scanjoins_test.go):
-- payment partitioned by payment_date with its foreign keys on the
-- partitions only, store's manager without a constraint, staff pictures as
-- PNG bytes, film's fulltext maintained by tsvector_update_trigger, a name
-- search column a PL/pgSQL trigger computes, a generated column. $C is a
-- canary put in the personal values.
CREATE TABLE country (country_id serial PRIMARY KEY, country text NOT NULL, last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE city (city_id serial PRIMARY KEY, city text NOT NULL, country_id int NOT NULL REFERENCES country, last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE address (address_id serial PRIMARY KEY, address text NOT NULL, address2 text, district text NOT NULL,
  city_id int NOT NULL REFERENCES city, postal_code text, phone text NOT NULL, last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE language (language_id serial PRIMARY KEY, name character(20) NOT NULL, last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE film (film_id serial PRIMARY KEY, title text NOT NULL, description text, release_year int,
  language_id int NOT NULL REFERENCES language, rating text, last_update timestamptz NOT NULL DEFAULT now(),
  fulltext tsvector NOT NULL, title_length int GENERATED ALWAYS AS (length(title)) STORED);
CREATE TRIGGER film_fulltext_trigger BEFORE INSERT OR UPDATE ON film
  FOR EACH ROW EXECUTE FUNCTION tsvector_update_trigger(fulltext, 'pg_catalog.english', title, description);
CREATE TABLE category (category_id serial PRIMARY KEY, name text NOT NULL, last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE film_category (film_id int NOT NULL REFERENCES film, category_id int NOT NULL REFERENCES category,
  last_update timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (film_id, category_id));
CREATE TABLE actor (actor_id serial PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL, last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE staff (staff_id serial PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL, address_id int NOT NULL REFERENCES address,
  email text, store_id int NOT NULL, active boolean NOT NULL DEFAULT true, username text NOT NULL, password text,
  last_update timestamptz NOT NULL DEFAULT now(), picture bytea);
CREATE TABLE store (store_id serial PRIMARY KEY, manager_staff_id int NOT NULL, address_id int NOT NULL REFERENCES address,
  last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE customer (customer_id serial PRIMARY KEY, store_id int NOT NULL REFERENCES store, first_name text NOT NULL,
  last_name text NOT NULL, email text, address_id int NOT NULL REFERENCES address, activebool boolean NOT NULL DEFAULT true,
  create_date date NOT NULL DEFAULT current_date, last_update timestamptz DEFAULT now(), active int,
  uuid uuid NOT NULL DEFAULT gen_random_uuid(), search_name text);
CREATE FUNCTION customer_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.search_name := lower(NEW.first_name || ' ' || NEW.last_name);
  RETURN NEW;
END $$;
CREATE TRIGGER customer_search BEFORE INSERT OR UPDATE ON customer FOR EACH ROW EXECUTE FUNCTION customer_search();
CREATE TABLE inventory (inventory_id serial PRIMARY KEY, film_id int NOT NULL REFERENCES film, store_id int NOT NULL REFERENCES store,
  last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE rental (rental_id serial PRIMARY KEY, rental_date timestamptz NOT NULL, inventory_id int NOT NULL REFERENCES inventory,
  customer_id int NOT NULL REFERENCES customer, return_date timestamptz, staff_id int NOT NULL REFERENCES staff,
  last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE payment (payment_id serial, customer_id int NOT NULL, staff_id int NOT NULL, rental_id int NOT NULL,
  amount numeric(5,2) NOT NULL, payment_date timestamptz NOT NULL, PRIMARY KEY (payment_date, payment_id)) PARTITION BY RANGE (payment_date);
CREATE TABLE payment_p2022_01 PARTITION OF payment FOR VALUES FROM ('2022-01-01') TO ('2022-02-01');
CREATE TABLE payment_p2022_02 PARTITION OF payment FOR VALUES FROM ('2022-02-01') TO ('2022-03-01');
ALTER TABLE payment_p2022_01 ADD FOREIGN KEY (customer_id) REFERENCES customer, ADD FOREIGN KEY (staff_id) REFERENCES staff,
  ADD FOREIGN KEY (rental_id) REFERENCES rental;
ALTER TABLE payment_p2022_02 ADD FOREIGN KEY (customer_id) REFERENCES customer, ADD FOREIGN KEY (staff_id) REFERENCES staff,
  ADD FOREIGN KEY (rental_id) REFERENCES rental;

INSERT INTO country (country) VALUES ('Afghanistan'), ('Algeria'), ('American Samoa'), ('Angola'), ('Argentina');
INSERT INTO city (city, country_id) SELECT c, 1 + i % 5 FROM unnest(ARRAY['A Corua (La Corua)', 'Abha', 'Abu Dhabi', 'Acua', 'Adana', 'Addis Abeba']) WITH ORDINALITY AS u(c, i);
INSERT INTO address (address, address2, district, city_id, postal_code, phone)
  SELECT a, CASE WHEN i % 3 = 0 THEN 'Apt ' || i || ' $C' ELSE '' END, d, 1 + i % 6, (35200 + i)::text, '1403333556' || i
  FROM unnest(ARRAY['47 MySakila Drive', '28 MySQL Boulevard', '23 Workhaven Lane', '1411 Lillydale Drive', '1913 Hanoi Way',
                    '1121 Loja Avenue', '692 Joliet Street', '1566 Inegl Manor', '53 Idfu Parkway', '1795 Santiago de Compostela Way'])
       WITH ORDINALITY AS u(a, i), LATERAL (SELECT (ARRAY['Alberta', 'QLD', 'Nagasaki', 'California', 'Attika'])[1 + i % 5] AS d) x;
INSERT INTO language (name) VALUES ('English'), ('Italian'), ('Japanese'), ('Mandarin'), ('French'), ('German');
INSERT INTO film (title, description, release_year, language_id, rating)
  SELECT t, 'A Epic Drama of a Feminist And a Mad Scientist who must Battle a Teacher in The Canadian Rockies', 2006, 1, r
  FROM unnest(ARRAY['ACADEMY DINOSAUR', 'ACE GOLDFINGER', 'ADAPTATION HOLES', 'AFFAIR PREJUDICE', 'AFRICAN EGG', 'AGENT TRUMAN',
                    'AIRPLANE SIERRA', 'AIRPORT POLLOCK', 'ALABAMA DEVIL', 'ALADDIN CALENDAR']) t,
       LATERAL (SELECT (ARRAY['PG', 'G', 'NC-17', 'PG-13', 'R'])[1 + length(t) % 5] AS r) x;
INSERT INTO category (name) VALUES ('Action'), ('Animation'), ('Children'), ('Classics'), ('Comedy'), ('Documentary');
INSERT INTO film_category SELECT film_id, 1 + film_id % 6 FROM film;
INSERT INTO actor (first_name, last_name) VALUES ('PENELOPE', 'GUINESS'), ('NICK', 'WAHLBERG'), ('ED', 'CHASE'), ('JENNIFER', 'DAVIS'),
  ('JOHNNY', 'LOLLOBRIGIDA'), ('BETTE', 'NICHOLSON'), ('GRACE', 'MOSTEL'), ('MATTHEW', 'JOHANSSON');
INSERT INTO staff (first_name, last_name, address_id, email, store_id, username, password, picture) VALUES
  ('Mike', 'Hillyer', 3, 'Mike.Hillyer.$C@sakilastaff.com', 1, 'Mike', '8cb2237d0679ca88db6464eac60da96345513964',
   '\x89504e470d0a1a0a0000000d4948445200000001'::bytea || convert_to('$C', 'UTF8')),
  ('Jon', 'Stephens', 4, 'Jon.Stephens.$C@sakilastaff.com', 2, 'Jon', '8cb2237d0679ca88db6464eac60da96345513964',
   '\x89504e470d0a1a0a0000000d4948445200000002'::bytea);
INSERT INTO store (manager_staff_id, address_id) VALUES (1, 1), (2, 2);
INSERT INTO customer (store_id, first_name, last_name, email, address_id, active)
  SELECT 1 + i % 2, f, l, f || '.' || l || '.$C@sakilacustomer.org', 1 + i % 10, 1
  FROM unnest(ARRAY['MARY', 'PATRICIA', 'LINDA', 'BARBARA', 'ELIZABETH', 'JENNIFER', 'MARIA', 'SUSAN', 'MARGARET', 'DOROTHY'],
              ARRAY['SMITH', 'JOHNSON', 'WILLIAMS', 'JONES', 'BROWN', 'DAVIS', 'MILLER', 'WILSON', 'MOORE', 'TAYLOR']) WITH ORDINALITY AS u(f, l, i);
INSERT INTO inventory (film_id, store_id) SELECT film_id, 1 + film_id % 2 FROM film;
INSERT INTO rental (rental_date, inventory_id, customer_id, return_date, staff_id)
  SELECT timestamptz '2022-01-05 10:00' + i * interval '37 minutes', 1 + i % 10, 1 + i % 10, timestamptz '2022-01-09 10:00' + i * interval '1 hour', 1 + i % 2
  FROM generate_series(1, 20) i;
INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date)
  SELECT customer_id, staff_id, rental_id, 2.99, rental_date + interval '3 minutes' FROM rental;
