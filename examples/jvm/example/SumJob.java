package example;

import java.util.HashMap;
import java.util.Map;
import org.apache.spark.sql.SparkSession;

/**
 * A JVM job for Spark Job Server for Python: a public static {@code run(SparkSession, String)}
 * gets the context's session and the job's config as JSON; what it returns (maps, lists, strings,
 * numbers, booleans) is the job's result.
 */
public class SumJob {
    public static Object run(SparkSession spark, String configJson) {
        Map<String, Object> result = new HashMap<>();
        result.put("sum", spark.range(10).selectExpr("sum(id)").first().getLong(0));
        result.put("configMentionsInput", configJson.contains("\"input\""));
        return result;
    }
}
