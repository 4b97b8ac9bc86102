package spark.jobserver.japi;

import com.typesafe.config.Config;
import org.apache.spark.sql.SparkSession;
import spark.jobserver.api.JobEnvironment;

/** A Java job that gets a {@link SparkSession} (a context of a session factory). */
public abstract class JavaSessionJob<D, R> implements BaseJavaJob<D, R, SparkSession> {
    @Override
    public abstract R run(SparkSession spark, JobEnvironment runtime, D data);

    @Override
    public abstract D verify(SparkSession spark, JobEnvironment runtime, Config config) throws RuntimeException;
}
