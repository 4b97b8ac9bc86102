package spark.jobserver.bridge;

import com.typesafe.config.Config;
import spark.jobserver.api.JobEnvironment;

/**
 * spark-jobserver's Scala traits, as the bridge calls them. Implemented in Scala
 * ({@code ScalaJobs}), which is built only where the Scala compiler is at hand; the bridge loads it
 * by name.
 */
public interface ScalaJobSupport {
    /** See {@link JobBridge#contextKind}. */
    String contextKind(Class<?> jobClass);

    Verified validate(Object job, Object context, JobEnvironment runtime, Config config);

    Object runJob(Object job, Object context, JobEnvironment runtime, Object data);
}
