package spark.jobserver.japi;

import com.typesafe.config.Config;

/** {@link JavaSessionJob} whose verify hands run a {@link Config}. */
public abstract class JSessionJob<R> extends JavaSessionJob<Config, R> {}
