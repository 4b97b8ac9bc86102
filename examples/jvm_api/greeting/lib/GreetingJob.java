package greeting.lib;

import com.typesafe.config.Config;
import org.apache.spark.sql.SparkSession;
import spark.jobserver.api.JobEnvironment;
import spark.jobserver.japi.JSessionJob;

/** A job in the library's jar: running it loads the jar into the context. */
public class GreetingJob extends JSessionJob<String> {
    @Override
    public String run(SparkSession spark, JobEnvironment runtime, Config data) {
        return Greeting.greet(data.getString("input.who"));
    }

    @Override
    public Config verify(SparkSession spark, JobEnvironment runtime, Config config) {
        return config;
    }
}
