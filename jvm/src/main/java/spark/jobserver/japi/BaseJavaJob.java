package spark.jobserver.japi;

import com.typesafe.config.Config;
import spark.jobserver.api.JobEnvironment;

/**
 * spark-jobserver's Java job: {@code verify} turns the job's config into the job's data (or throws
 * to reject the request: a {@link JavaValidationException}, or any other exception), {@code run}
 * does the work and returns the result.
 *
 * @param <D> what verify makes of the config, and run receives
 * @param <R> the job's result
 * @param <C> what the context hands the job
 */
public interface BaseJavaJob<D, R, C> {
    R run(C sc, JobEnvironment runtime, D data);

    D verify(C sc, JobEnvironment runtime, Config config) throws RuntimeException;
}
