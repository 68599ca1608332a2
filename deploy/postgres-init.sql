-- One PostgreSQL server, one database per component (run once, when the data volume is first created).
CREATE DATABASE labelstudio OWNER inkloop;
CREATE DATABASE prefect OWNER inkloop;
