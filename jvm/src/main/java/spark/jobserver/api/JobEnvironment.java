package spark.jobserver.api;

import com.typesafe.config.Config;
import spark.jobserver.NamedObjects;

/** What a job learns about where it runs: spark-jobserver's {@code JobEnvironment}. */
public interface JobEnvironment {
    String jobId();

    NamedObjects namedObjects();

    Config contextConfig();
}
