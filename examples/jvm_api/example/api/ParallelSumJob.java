package example.api;

import com.typesafe.config.Config;
import java.util.Arrays;
import org.apache.spark.api.java.JavaSparkContext;
import spark.jobserver.api.JobEnvironment;
import spark.jobserver.japi.JSparkJob;

/** A JSparkJob: it runs in a context of JavaSparkContextFactory (or DefaultSparkContextFactory). */
public class ParallelSumJob implements JSparkJob<Integer> {
    @Override
    public Integer run(JavaSparkContext sc, JobEnvironment runtime, Config data) {
        return sc.parallelize(Arrays.asList(1, 2, 3, 4)).reduce(Integer::sum);
    }

    @Override
    public Config verify(JavaSparkContext sc, JobEnvironment runtime, Config config) {
        return config;
    }
}
