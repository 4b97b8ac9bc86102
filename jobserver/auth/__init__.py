"""Who is calling the REST API and what it may do: logins by users file, LDAP, OIDC bearer tokens
or TLS client certificates, and spark-jobserver's permissions."""
